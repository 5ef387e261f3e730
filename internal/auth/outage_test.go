package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// hangingTouch is a KeyStore whose last-use writes wait until their
// context ends, as on a database that stopped answering.
type hangingTouch struct{ *fakeKeys }

func (h hangingTouch) TouchKey(ctx context.Context, _ int64, _ time.Time) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestResolveTouchKeepsTheCallersDeadline: the last-use write is not
// cancelled by a client leaving, but it keeps the caller's deadline, so a
// database that hangs does not hold the request past it.
func TestResolveTouchKeepsTheCallersDeadline(t *testing.T) {
	keys := newFakeKeys()
	key := keys.add(1, billing.RoleUser, "u1", false)
	a := &auth.Authenticator{Keys: hangingTouch{keys}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	p, err := a.Resolve(ctx, key)
	if err != nil || p.UserID != "u1" {
		t.Fatalf("Resolve = %+v, %v", p, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Resolve took %v past a 100ms deadline", d)
	}
}

// TestResolveLookupFailureKeepsItsCause: a failed lookup is not a verdict
// on the key; its error keeps the store's cause for the log and carries
// nothing of the key.
func TestResolveLookupFailureKeepsItsCause(t *testing.T) {
	keys := newFakeKeys()
	key := keys.add(1, billing.RoleUser, "u1", false)
	prefix, _ := auth.ParseKey(key)
	cause := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	keys.failGet = cause
	_, err := (&auth.Authenticator{Keys: keys}).Resolve(context.Background(), key)
	if !errors.Is(err, cause) || billing.ErrorCode(err) == billing.CodeUnauthorized {
		t.Errorf("Resolve with the store down = %v (code %s); want its cause, not unauthorized", err, billing.ErrorCode(err))
	}
	if strings.Contains(err.Error(), prefix) {
		t.Errorf("the error names the key: %v", err)
	}
}
