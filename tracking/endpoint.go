package tracking

import (
	"net/http"
	"path"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// endpointOf names what a request called, for the ledger. It prefers the
// http.ServeMux pattern that matched ("/api/{provider}/chat"), without its
// method, which Outcome.Method carries: a pattern is the service's own
// text and groups the calls of one route. served is the request the
// handler was given, in which a mux inside the middleware records the
// pattern; r is the request the middleware was given, which has one when
// the middleware sits inside the mux. A mux behind another middleware that
// replaces the request records its pattern where neither can see it, and
// then the endpoint is the request's path, cleaned as the mux cleans it.
// Either way it is cut to text the server stores.
func endpointOf(r, served *http.Request) string {
	endpoint := patternPath(served.Pattern)
	if endpoint == "" {
		endpoint = patternPath(r.Pattern)
	}
	if endpoint == "" {
		endpoint = cleanPath(r.URL.Path)
	}
	return billing.CleanText(endpoint, billing.MaxEndpointBytes)
}

// patternPath is a ServeMux pattern ("[METHOD ][HOST]/[PATH]") without its
// method.
func patternPath(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		return strings.TrimLeft(pattern[i:], " \t")
	}
	return pattern
}

// cleanPath resolves the dot segments and repeated slashes of p, keeping a
// trailing slash, as ServeMux does before matching. The "*" of
// "OPTIONS *" stays as it is.
func cleanPath(p string) string {
	switch {
	case p == "":
		return "/"
	case p == "*":
		return p
	case p[0] != '/':
		p = "/" + p
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// cleanOutcome shapes the text of o that comes from outside the service
// (Outcome.Endpoint, Outcome.Method) as the server stores it, so that a
// call already made is never refused at settle for its bytes. Both meters
// clean what they are given, since a service may settle calls of its own.
func cleanOutcome(o Outcome) Outcome {
	o.Endpoint = billing.CleanText(o.Endpoint, billing.MaxEndpointBytes)
	if o.Method != "" {
		o.Method = cleanMethod(o.Method)
	}
	return o
}

// cleanMethod returns method when the server takes it (a token of at most
// billing.MaxMethodBytes bytes) and "OTHER" otherwise. A server of
// net/http only serves token methods, but a handler may be given any
// request; "" is GET, as for http.Request.
func cleanMethod(method string) string {
	if method == "" {
		return http.MethodGet
	}
	return billing.CleanMethod(method)
}
