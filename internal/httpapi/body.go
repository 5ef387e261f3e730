package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
)

// maxBodyBytes bounds the body of an operation that sets no limit of its
// own; huma gives operations that read a body the same 1 MiB by default.
const maxBodyBytes = 1 << 20

// limitBody refuses a request whose body is larger than its operation
// accepts with 413, before the handler runs. huma enforces MaxBodyBytes only
// for operations that read a body, so without this an operation that takes
// none (POST …/mark-read) would act on a request of any size. A declared
// Content-Length is checked without reading; a body of unknown length sent
// to an operation without one is read up to the limit.
func (s *Server) limitBody(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	limit := op.MaxBodyBytes
	if limit < 0 { // explicitly unlimited
		next(ctx)
		return
	}
	if limit == 0 {
		limit = maxBodyBytes
	}
	tooLarge := func() {
		_ = huma.WriteErr(s.api, ctx, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body is too large: this route accepts at most %d bytes", limit))
	}
	if cl := ctx.Header("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > limit {
			tooLarge()
			return
		}
	}
	if op.RequestBody == nil {
		if body := ctx.BodyReader(); body != nil {
			n, err := io.CopyN(io.Discard, body, limit+1)
			var mbe *http.MaxBytesError // a server-wide http.MaxBytesReader cut it off
			switch {
			case n > limit, errors.As(err, &mbe):
				tooLarge()
				return
			case err != nil && !errors.Is(err, io.EOF):
				_ = huma.WriteErr(s.api, ctx, http.StatusBadRequest, "cannot read the request body")
				return
			}
		}
	}
	next(ctx)
}
