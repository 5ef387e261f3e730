package httpapi

import (
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// authenticate decides who may call a protected operation before huma
// parses and validates the request, so that a caller learns nothing about a
// route it may not use from how its input is judged: without a valid key
// the answer is 401, and it is 403 when a user key calls an admin route or
// names another user in a user_id parameter (path or query), whatever else
// is wrong with the request. Whose an alert, a reservation or a body's
// user_id is can only be known once the request is read, so the handlers
// check those.
//
// auth.Principal remembers the principal for the rest of the request, so
// the handlers' own Authorize, RequireAdmin and Principal calls cost no
// second key lookup.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	admin := strings.HasPrefix(op.Path, AdminPrefix+"/")
	if len(op.Security) == 0 && !admin {
		next(ctx)
		return
	}
	if err := s.checkAccess(ctx, op, admin); err != nil {
		s.refuse(ctx, err)
		return
	}
	next(ctx)
}

// checkAccess returns an error unless the request's key may call op with
// the user_id parameters it names. Errors: unauthorized, forbidden,
// unavailable (the key could not be looked up).
func (s *Server) checkAccess(ctx huma.Context, op *huma.Operation, admin bool) error {
	rctx := ctx.Context()
	if admin {
		_, err := s.auth.RequireAdmin(rctx)
		return err
	}
	if _, err := s.auth.Principal(rctx); err != nil {
		return err
	}
	for _, p := range op.Parameters {
		if p.Name != "user_id" {
			continue
		}
		var userID string
		switch p.In {
		case "path":
			userID = ctx.Param(p.Name)
		case "query":
			// Optional: a key without it acts for its own user.
			if userID = ctx.Query(p.Name); userID == "" {
				continue
			}
		default:
			continue
		}
		if _, err := s.auth.Authorize(rctx, userID); err != nil {
			return err
		}
	}
	return nil
}
