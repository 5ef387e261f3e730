package tracking

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// defaultProviderSegments maps each provider to the path segments that
// name it in DefaultIdentify. It is read only through
// DefaultProviderSegments, which copies it, so no caller can change what
// DefaultIdentify matches while requests are being served.
var defaultProviderSegments = map[string][]string{
	"gemini": {"gemini", "google"}, "openai": {"openai", "gpt"}, "anthropic": {"anthropic", "claude"},
	"mistral": {"mistral"}, "tavily": {"tavily"}, "serper": {"serper"}, "metaphor": {"metaphor", "exa"},
	"firecrawl": {"firecrawl"}, "stability": {"stability", "stable-diffusion"},
}

// defaultProviders is the lookup of DefaultIdentify and ProviderFromPath.
var defaultProviders = newProviderIndex(defaultProviderSegments)

// DefaultProviderSegments returns a copy of the table DefaultIdentify
// uses, which maps each provider to the path segments that name it: a
// start for a table of one's own (see NewPathIdentify).
func DefaultProviderSegments() map[string][]string {
	m := make(map[string][]string, len(defaultProviderSegments))
	for p, segs := range defaultProviderSegments {
		m[p] = slices.Clone(segs)
	}
	return m
}

// NewPathIdentify returns an Identify that, like DefaultIdentify, takes
// the user from WithUser, but takes the provider from the first path
// segment that segments (provider → segments) names. Matching is by whole
// segment, in any case, so "exa" matches /api/exa/search but not
// /api/example. The table is copied: changing it afterwards changes
// nothing. It panics when a segment is empty or names two providers, since
// either would make the table mean something other than what it says.
func NewPathIdentify(segments map[string][]string) Identify {
	idx := newProviderIndex(segments)
	return func(r *http.Request) (string, string, bool) {
		return identify(r, idx)
	}
}

// DefaultIdentify takes the user from WithUser and the provider from the
// first path segment that names one in DefaultProviderSegments.
func DefaultIdentify(r *http.Request) (string, string, bool) {
	return identify(r, defaultProviders)
}

// ProviderFromPath returns the provider that a whole segment of path
// names in DefaultProviderSegments, or "".
func ProviderFromPath(path string) string {
	return defaultProviders.fromPath(path)
}

func identify(r *http.Request, idx providerIndex) (string, string, bool) {
	user, _ := r.Context().Value(userKey{}).(string)
	if user == "" {
		return "", "", false
	}
	provider := idx.fromPath(r.URL.Path)
	return user, provider, provider != ""
}

// providerIndex maps a lower-case path segment to the provider it names.
type providerIndex map[string]string

func newProviderIndex(segments map[string][]string) providerIndex {
	idx := providerIndex{}
	// Sorted, so that a conflict is reported the same way every time.
	for _, p := range slices.Sorted(maps.Keys(segments)) {
		for _, s := range segments[p] {
			s = strings.ToLower(s)
			if s == "" || strings.Contains(s, "/") {
				panic(fmt.Sprintf("tracking: provider %q: segment %q is not a path segment", p, s))
			}
			if other, ok := idx[s]; ok && other != p {
				panic(fmt.Sprintf("tracking: segment %q names both %q and %q", s, other, p))
			}
			idx[s] = p
		}
	}
	return idx
}

func (idx providerIndex) fromPath(path string) string {
	for seg := range strings.SplitSeq(path, "/") {
		if p, ok := idx[strings.ToLower(seg)]; ok {
			return p
		}
	}
	return ""
}
