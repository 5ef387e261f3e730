package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var keyNow = date(2026, time.January, 5, 7, 0, 0, 0)

func createKey(t *testing.T, db *store.DB, k billing.APIKey, hash string) billing.APIKey {
	t.Helper()
	id, err := db.CreateKey(context.Background(), k, hash)
	if err != nil {
		t.Fatalf("create key %s: %v", k.Prefix, err)
	}
	k.ID = id
	return k
}

func prefixes(keys []billing.APIKey) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.Prefix)
	}
	return out
}

func TestKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		u1a := createKey(t, db, billing.APIKey{Prefix: "ak_u1a", UserID: "u1", Role: billing.RoleUser, Name: "laptop", CreatedAt: keyNow}, "hash-u1a")
		u2 := createKey(t, db, billing.APIKey{Prefix: "ak_u2", UserID: "u2", Role: billing.RoleUser, CreatedAt: keyNow.Add(time.Minute)}, "hash-u2")
		u1b := createKey(t, db, billing.APIKey{Prefix: "ak_u1b", UserID: "u1", Role: billing.RoleUser, Name: "ci", CreatedAt: keyNow.Add(2 * time.Minute)}, "hash-u1b")

		for _, want := range []struct {
			key  billing.APIKey
			hash string
		}{{u1a, "hash-u1a"}, {u2, "hash-u2"}, {u1b, "hash-u1b"}} {
			got, hash, err := db.KeyByPrefix(ctx, want.key.Prefix)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want.key) || hash != want.hash {
				t.Fatalf("KeyByPrefix(%s) = %+v %q, want %+v %q", want.key.Prefix, got, hash, want.key, want.hash)
			}
		}
		for _, p := range []string{"ak_nope", "", "ak_u1", "AK_U1A"} {
			_, hash, err := db.KeyByPrefix(ctx, p)
			wantCode(t, err, billing.CodeNotFound)
			if hash != "" {
				t.Fatalf("a hash for unknown prefix %q", p)
			}
		}

		_, err := db.CreateKey(ctx, billing.APIKey{Prefix: "ak_u2", UserID: "u3", Role: billing.RoleUser, CreatedAt: keyNow}, "other")
		wantCode(t, err, billing.CodeConflict)
		if _, hash, _ := db.KeyByPrefix(ctx, "ak_u2"); hash != "hash-u2" {
			t.Fatalf("a conflicting create replaced the hash: %q", hash)
		}

		lists := []struct {
			user string
			want []string
		}{
			{"u1", []string{"ak_u1b", "ak_u1a"}},
			{"u2", []string{"ak_u2"}},
			{"nobody", []string{}},
			{"", []string{"ak_u1b", "ak_u2", "ak_u1a"}},
		}
		for _, l := range lists {
			keys, err := db.ListKeys(ctx, l.user)
			if err != nil {
				t.Fatal(err)
			}
			if got := prefixes(keys); !reflect.DeepEqual(got, l.want) {
				t.Fatalf("ListKeys(%q) = %v, want %v", l.user, got, l.want)
			}
		}
	})
}

func TestRevokeKeyAndAdmin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		wantAdmin := func(want bool) {
			t.Helper()
			if got, err := db.HasActiveAdminKey(ctx); err != nil || got != want {
				t.Fatalf("HasActiveAdminKey = %v, %v; want %v", got, err, want)
			}
		}
		wantAdmin(false)
		createKey(t, db, billing.APIKey{Prefix: "ak_user", UserID: "u1", Role: billing.RoleUser, CreatedAt: keyNow}, "h")
		wantAdmin(false) // a user key is not an admin key
		createKey(t, db, billing.APIKey{Prefix: "ak_adm1", Role: billing.RoleAdmin, CreatedAt: keyNow}, "h")
		wantAdmin(true)
		createKey(t, db, billing.APIKey{Prefix: "ak_adm2", Role: billing.RoleAdmin, CreatedAt: keyNow}, "h")

		revoked := keyNow.Add(time.Hour)
		if err := db.RevokeKey(ctx, "ak_adm1", revoked); err != nil {
			t.Fatal(err)
		}
		wantAdmin(true) // the second admin key is still active
		if err := db.RevokeKey(ctx, "ak_adm2", revoked); err != nil {
			t.Fatal(err)
		}
		wantAdmin(false)

		// Revoking again keeps the first time.
		if err := db.RevokeKey(ctx, "ak_adm1", revoked.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		k, _, err := db.KeyByPrefix(ctx, "ak_adm1")
		if err != nil || k.RevokedAt == nil || !k.RevokedAt.Equal(revoked) {
			t.Fatalf("revoked key %+v, %v; want revoked at %s", k, err, revoked)
		}
		if k, _, _ := db.KeyByPrefix(ctx, "ak_user"); k.RevokedAt != nil {
			t.Fatalf("revoking one key revoked another: %+v", k)
		}
		for _, p := range []string{"ak_nope", ""} {
			wantCode(t, db.RevokeKey(ctx, p, revoked), billing.CodeNotFound)
		}
	})
}

func TestTouchKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		k := createKey(t, db, billing.APIKey{Prefix: "ak_t", UserID: "u1", Role: billing.RoleUser, CreatedAt: keyNow}, "h")
		other := createKey(t, db, billing.APIKey{Prefix: "ak_o", UserID: "u1", Role: billing.RoleUser, CreatedAt: keyNow}, "h")
		if got, _, _ := db.KeyByPrefix(ctx, "ak_t"); got.LastUsedAt != nil {
			t.Fatalf("new key used at %v", got.LastUsedAt)
		}
		for _, at := range []time.Time{keyNow.Add(time.Minute), keyNow.Add(time.Hour)} {
			if err := db.TouchKey(ctx, k.ID, at); err != nil {
				t.Fatal(err)
			}
			got, _, err := db.KeyByPrefix(ctx, "ak_t")
			if err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
				t.Fatalf("after touch at %s: %+v, %v", at, got, err)
			}
		}
		if got, _, _ := db.KeyByPrefix(ctx, other.Prefix); got.LastUsedAt != nil {
			t.Fatalf("touching one key touched another: %+v", got)
		}
	})
}
