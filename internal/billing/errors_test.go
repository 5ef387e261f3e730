package billing_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

func TestErrorCodeAndMessage(t *testing.T) {
	notFound := billing.Errorf(billing.CodeNotFound, "plan %d does not exist", 7)
	invalid := billing.InvalidField("query.billing_period", "not a month", "2026-13")
	tests := []struct {
		name     string
		err      error
		wantCode billing.Code
		wantMsg  string
	}{
		{"nil", nil, "", ""},
		{"coded", notFound, billing.CodeNotFound, "plan 7 does not exist"},
		{"wrapped once", fmt.Errorf("load plan: %w", notFound), billing.CodeNotFound, "plan 7 does not exist"},
		{"wrapped twice", fmt.Errorf("handler: %w", fmt.Errorf("load plan: %w", notFound)), billing.CodeNotFound, "plan 7 does not exist"},
		{"joined", errors.Join(errors.New("cleanup failed"), invalid), billing.CodeInvalid, "invalid query.billing_period: not a month"},
		{"invalid field", invalid, billing.CodeInvalid, "invalid query.billing_period: not a month"},
		// Uncoded errors are internal and their text, which may hold SQL or
		// file paths, never reaches a user.
		{"uncoded", errors.New(`pq: relation "users" does not exist`), billing.CodeInternal, "internal error"},
		{"uncoded wrapped", fmt.Errorf("settle: %w", context.DeadlineExceeded), billing.CodeInternal, "internal error"},
		{"coded wrapped with %v loses the code", fmt.Errorf("load: %v", notFound), billing.CodeInternal, "internal error"},
	}
	for _, tt := range tests {
		if got := billing.ErrorCode(tt.err); got != tt.wantCode {
			t.Errorf("%s: ErrorCode = %q; want %q", tt.name, got, tt.wantCode)
		}
		if tt.err == nil {
			continue
		}
		if got := billing.ErrorMessage(tt.err); got != tt.wantMsg {
			t.Errorf("%s: ErrorMessage = %q; want %q", tt.name, got, tt.wantMsg)
		}
	}
}

func TestErrorShape(t *testing.T) {
	e := billing.InvalidField("path.alert_id", "must be positive", -1)
	if e.Error() != "invalid: invalid path.alert_id: must be positive" {
		t.Errorf("Error() = %q", e.Error())
	}
	if len(e.Fields) != 1 || e.Fields[0] != (billing.FieldError{Location: "path.alert_id", Message: "must be positive", Value: -1}) {
		t.Errorf("Fields = %+v", e.Fields)
	}
	// Errorf formats only its message; the code is not part of it.
	if got := billing.Errorf(billing.CodeConflict, "event %q exists", "e1"); got.Message != `event "e1" exists` || got.Code != billing.CodeConflict {
		t.Errorf("Errorf = %+v", got)
	}
	// A coded error reached through errors.As keeps its fields.
	var be *billing.Error
	if !errors.As(fmt.Errorf("ctx: %w", e), &be) || be != e {
		t.Errorf("errors.As through %%w did not find the original *Error")
	}
}
