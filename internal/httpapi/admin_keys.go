package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// KeysAdmin is what the admin key routes need of the store.
type KeysAdmin interface {
	auth.KeyCreator
	ListKeys(ctx context.Context, userID string) ([]billing.APIKey, error)
	// RevokeKeyKeepingAdmin revokes a key, refusing the last active admin
	// key when keepAdmin is set. Errors: not_found, conflict.
	RevokeKeyKeepingAdmin(ctx context.Context, prefix string, now time.Time, keepAdmin bool) (billing.APIKey, error)
}

// adminKeys serves the admin key routes.
type adminKeys struct {
	*Server
	admin KeysAdmin
}

// registerAdminKeys registers the routes that issue, list and revoke API
// keys, the HTTP twin of `alwrity-billing keys`.
func (s *Server) registerAdminKeys() {
	admin, ok := s.store.(KeysAdmin)
	if !ok {
		s.logger.Warn("the store cannot administer api keys; the admin key routes are off")
		return
	}
	a := &adminKeys{Server: s, admin: admin}
	op := func(id, method, path, summary, desc string, errs ...int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: AdminPrefix + path, Summary: summary, Description: desc,
			Tags: []string{"admin"}, Security: bearer,
			Errors: append([]int{http.StatusUnauthorized, http.StatusForbidden}, errs...)}
	}
	create := op("create-key", http.MethodPost, "/keys", "Issue an API key (admin)",
		"Issues a user key (acting for user_id alone) or an admin key (acting for every user). The answer carries the "+
			"whole key, shown only this once: only its hash is stored. The key's prefix names it in listings and "+
			"revocation.", http.StatusBadRequest)
	create.DefaultStatus = http.StatusCreated
	huma.Register(s.api, create, a.create)
	huma.Register(s.api, op("list-keys", http.MethodGet, "/keys", "API keys (admin)",
		"Keys newest first, revoked ones too, by prefix: never the key or its hash."), a.list)
	huma.Register(s.api, op("revoke-key", http.MethodDelete, "/keys/{prefix}", "Revoke an API key (admin)",
		"The key stops working at once (its next request is 401). Revoking a revoked key changes nothing and answers "+
			"the same, with the time of the first revocation. The last active admin key cannot be revoked (409) "+
			"while the server has no other admin credential (ALWRITY_ADMIN_KEY, or --dev on loopback): create "+
			"another admin key first.", http.StatusBadRequest, http.StatusNotFound, http.StatusConflict), a.revoke)
}

// APIKeyJSON is a stored key, without its secret.
type APIKeyJSON struct {
	Prefix     string     `json:"prefix" doc:"The key's public start, which names it."`
	UserID     string     `json:"user_id" doc:"The user a user key acts for; empty for an admin key."`
	Role       string     `json:"role" enum:"user,admin"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at" doc:"Recorded at most once a minute; null when never used."`
	RevokedAt  *time.Time `json:"revoked_at" doc:"null while the key works."`
}

func keyJSON(k billing.APIKey) APIKeyJSON {
	return APIKeyJSON{Prefix: k.Prefix, UserID: k.UserID, Role: string(k.Role), Name: k.Name, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

// CreateKeyBody says whom a new key acts for.
type CreateKeyBody struct {
	UserID string `json:"user_id,omitempty" doc:"The user a user key acts for (1–128 characters of printable text); required for a user key, empty for an admin key."`
	Role   string `json:"role,omitempty" enum:"user,admin" default:"user" doc:"user acts for user_id alone; admin for every user."`
	Name   string `json:"name,omitempty" doc:"A label to recognise the key by (at most 128 characters)."`
}

// CreatedKeyJSON is a new key with its secret.
type CreatedKeyJSON struct {
	Key string `json:"key" doc:"The whole key, for 'Authorization: Bearer <key>'. Shown only in this answer: store it now."`
	APIKeyJSON
}

type createKeyOutput struct {
	// The answer carries a credential: no cache may keep it.
	CacheControl string `header:"Cache-Control"`
	Body         CreatedKeyJSON
}

func (a *adminKeys) create(ctx context.Context, in *struct{ Body CreateKeyBody }) (*createKeyOutput, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	spec := auth.KeySpec{Role: billing.Role(in.Body.Role), UserID: in.Body.UserID, Name: in.Body.Name}
	if spec.Role == "" {
		spec.Role = billing.RoleUser
	}
	if fs := spec.Problems("body"); len(fs) > 0 {
		return nil, a.problem(ctx, &billing.Error{Code: billing.CodeInvalid, Message: "the key cannot be issued", Fields: fs})
	}
	key, k, err := auth.Issue(ctx, a.admin, spec, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	a.logger.InfoContext(ctx, "issued an api key", "key_prefix", k.Prefix, "role", string(k.Role), "user_id", k.UserID)
	return &createKeyOutput{CacheControl: "no-store", Body: CreatedKeyJSON{Key: key, APIKeyJSON: keyJSON(k)}}, nil
}

type listKeysInput struct {
	UserID string `query:"user_id" maxLength:"128" doc:"Only this user's keys."`
	Role   string `query:"role" enum:"user,admin" doc:"Only keys of this role."`
}

// KeyListJSON lists keys.
type KeyListJSON struct {
	Keys  []APIKeyJSON `json:"keys"`
	Total int          `json:"total"`
}

func (a *adminKeys) list(ctx context.Context, in *listKeysInput) (*struct{ Body KeyListJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	keys, err := a.admin.ListKeys(ctx, in.UserID)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out := KeyListJSON{Keys: make([]APIKeyJSON, 0, len(keys))}
	for _, k := range keys {
		if in.Role == "" || string(k.Role) == in.Role {
			out.Keys = append(out.Keys, keyJSON(k))
		}
	}
	out.Total = len(out.Keys)
	return &struct{ Body KeyListJSON }{out}, nil
}

type revokeKeyInput struct {
	Prefix string `path:"prefix" maxLength:"64" doc:"The key's prefix, as listed (alw_ and 8 more characters)."`
}

func (a *adminKeys) revoke(ctx context.Context, in *revokeKeyInput) (*struct{ Body APIKeyJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if !auth.IsPrefix(in.Prefix) {
		// The value is not echoed: it may be a whole key, pasted where its
		// prefix belongs.
		return nil, a.problem(ctx, billing.InvalidField("path.prefix",
			"must be a key prefix: alw_ and 8 more characters, as GET /api/admin/keys lists it", nil))
	}
	// A server with a configured admin key (or dev-mode loopback access)
	// can always be reached again; one without would lock every admin out
	// until someone with database access ran `alwrity-billing keys create
	// --admin` or restarted it.
	keepAdmin := a.auth.AdminKey == "" && !a.auth.DevLoopbackAdmin
	k, err := a.admin.RevokeKeyKeepingAdmin(ctx, in.Prefix, a.now(), keepAdmin)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	a.logger.InfoContext(ctx, "revoked an api key", "key_prefix", k.Prefix, "role", string(k.Role), "user_id", k.UserID)
	return &struct{ Body APIKeyJSON }{keyJSON(k)}, nil
}
