package httpapi_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// adminRoutes are the admin pricing operations.
var adminRoutes = []route{
	{"GET", "/api/admin/prices", false},
	{"POST", "/api/admin/prices", false},
	{"POST", "/api/admin/prices/import", false},
	{"GET", "/api/admin/prices/export", false},
	{"GET", "/api/admin/model-aliases", false},
	{"PUT", "/api/admin/model-aliases", false},
	{"DELETE", "/api/admin/model-aliases", false},
}

// The admin paths join ops_test.go's API-wide route checks. That test
// compares its route count with the number of documented paths, so each
// admin path is listed there once; TestAdminPricingOpenAPI checks every
// method of every path.
func init() {
	seen := map[string]bool{}
	for _, r := range adminRoutes {
		if !seen[r.path] {
			seen[r.path] = true
			routes = append(routes, r)
		}
	}
}

// admin sends a request with the admin key and a JSON body.
func (e *env) admin(method, path, body string) response {
	e.t.Helper()
	return e.do(method, path, testAdminKey, strings.NewReader(body), "Content-Type", "application/json")
}

// historyOf lists the price versions of one model through the admin API.
func (e *env) historyOf(provider, model string) []map[string]any {
	e.t.Helper()
	m := e.ok(e.get("/api/admin/prices?provider="+provider+"&model="+url.QueryEscape(model), testAdminKey))
	var out []map[string]any
	for _, p := range arr(e.t, m["prices"]) {
		out = append(out, obj(e.t, p))
	}
	if integer(e.t, m["total"]) != int64(len(out)) {
		e.t.Fatalf("total %v for %d prices", m["total"], len(out))
	}
	return out
}

// publicPrice returns the public pricing row of one model now, or nil.
func (e *env) publicPrice(provider, model string) map[string]any {
	e.t.Helper()
	d := e.data(e.get("/api/subscription/pricing?provider="+provider, ""))
	for _, r := range arr(e.t, d["pricing"]) {
		if p := obj(e.t, r); p["model_name"] == model {
			return p
		}
	}
	return nil
}

func readLiteLLMSample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../pricefile/testdata/litellm_sample.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAdminPricingOpenAPI(t *testing.T) {
	e := newEnv(t, storetest.Backends()[0], defaultNow)
	doc := decode(t, e.get("/api/openapi.json", "").body)
	paths := obj(t, doc["paths"])
	for _, r := range adminRoutes {
		op := obj(t, obj(t, paths[r.path])[strings.ToLower(r.method)])
		if op["security"] == nil || op["operationId"] == nil || op["summary"] == nil {
			t.Errorf("%s %s: security %v, operationId %v, summary %v", r.method, r.path, op["security"], op["operationId"], op["summary"])
		}
		if tags := arr(t, op["tags"]); len(tags) != 1 || tags[0] != "admin" {
			t.Errorf("%s %s: tags %v", r.method, r.path, tags)
		}
	}
	params := func(method, path string) map[string]bool {
		out := map[string]bool{}
		ps, _ := obj(t, obj(t, paths[path])[method])["parameters"].([]any)
		for _, p := range ps {
			out[obj(t, p)["name"].(string)] = true
		}
		return out
	}
	for path, want := range map[string][]string{
		"get /api/admin/prices":           {"provider", "model"},
		"post /api/admin/prices/import":   {"format", "effective_from", "dry_run"},
		"get /api/admin/prices/export":    {"history"},
		"delete /api/admin/model-aliases": {"provider", "alias"},
	} {
		method, p, _ := strings.Cut(path, " ")
		got := params(method, p)
		for _, w := range want {
			if !got[w] {
				t.Errorf("%s does not declare %s (declared %v)", path, w, got)
			}
		}
	}
	// The add-price body is documented as the entry it is, money as numbers.
	body := obj(t, obj(t, obj(t, obj(t, obj(t, paths["/api/admin/prices"])["post"])["requestBody"])["content"])["application/json"])
	schema := obj(t, body["schema"])
	if ref, _ := schema["$ref"].(string); ref != "" {
		name := ref[strings.LastIndex(ref, "/")+1:]
		schema = obj(t, obj(t, obj(t, doc["components"])["schemas"])[name])
	}
	props := obj(t, schema["properties"])
	for _, k := range []string{"provider", "model", "effective_from", "input", "output", "cached_input", "long_context"} {
		if props[k] == nil {
			t.Errorf("the add-price body schema lacks %s: %v", k, sortedKeys(props))
		}
	}
	if ty := obj(t, props["input"])["type"]; ty != "number" {
		t.Errorf("input documented as %v", ty)
	}
}

func TestAdminPricingAuth(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		user := e.userKey("alice")
		entry := `{"provider": "openai", "model": "gpt-auth", "input": 1, "output": 1}`
		requests := []struct{ method, path, body string }{
			{"GET", "/api/admin/prices", ""},
			{"POST", "/api/admin/prices", entry},
			{"POST", "/api/admin/prices/import", `{"prices": [` + entry + `]}`},
			{"POST", "/api/admin/prices/import?format=litellm", readLiteLLMSample(t)},
			{"GET", "/api/admin/prices/export", ""},
			{"GET", "/api/admin/model-aliases", ""},
			{"PUT", "/api/admin/model-aliases", `{"provider": "openai", "alias": "a", "model": "gpt-4"}`},
			{"DELETE", "/api/admin/model-aliases?provider=openai&alias=a", ""},
		}
		before := len(e.historyOf("", ""))
		for _, rq := range requests {
			name := rq.method + " " + rq.path
			for c, key := range map[string]string{"no key": "", "bad key": "alw_nonsense", "user key": user} {
				r := e.do(rq.method, rq.path, key, strings.NewReader(rq.body), "Content-Type", "application/json")
				want := http.StatusUnauthorized
				if key == user {
					want = http.StatusForbidden
				}
				if r.status != want {
					t.Errorf("%s with %s: %s, want %d", name, c, r, want)
					continue
				}
				checkProblem(t, r)
			}
		}
		if n := len(e.historyOf("", "")); n != before {
			t.Errorf("refused requests changed the prices: %d versions, was %d", n, before)
		}
		if a := e.ok(e.get("/api/admin/model-aliases", testAdminKey)); integer(t, a["total"]) != 0 {
			t.Errorf("a refused request set an alias: %v", a)
		}
	})
}

func TestAdminAddPriceAndHistory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		// Amounts as numbers (with exponents) or strings; no time means now.
		r := e.admin("POST", "/api/admin/prices", `{"provider": "openai", "model": "gpt-4o", "description": "GPT-4o (2026)",
			"input": 2e-06, "output": "0.000008", "cached_input": "1e-6", "cache_write_5m": 0.0000025, "cache_write_1h": 0.000004,
			"reasoning": 0.00001, "per_request": 0.0001, "per_search": 0.03, "per_image": 0.04, "per_page": 0.002,
			"long_context": {"threshold_tokens": 128000, "input": 0.000004, "output": 0.000016, "cached_input": 0.000002,
				"cache_write_5m": null, "cache_write_1h": "0.000008", "reasoning": 0.00002}}`)
		if r.status != http.StatusCreated {
			t.Fatalf("add: %s", r)
		}
		got := decode(t, r.body)
		lc := Obj{"threshold_tokens": "int", "input": "number", "output": "number", "cached_input": "number",
			"cache_write_1h": "number", "reasoning": "number"}
		check(t, "added", got, Obj{"id": "int", "is_active": "bool", "provider": "string", "model": "string",
			"effective_from": "time", "description": "string", "input": "number", "output": "number", "cached_input": "number",
			"cache_write_5m": "number", "cache_write_1h": "number", "reasoning": "number", "per_request": "number",
			"per_search": "number", "per_image": "number", "per_page": "number", "long_context": lc})
		for k, want := range map[string]string{"input": "0.000002", "output": "0.000008", "cached_input": "0.000001",
			"cache_write_5m": "0.0000025", "per_search": "0.03"} {
			if v := num(t, got[k]); v != want {
				t.Errorf("%s = %s, want %s", k, v, want)
			}
		}
		if got["effective_from"] != "2026-11-15T12:00:00Z" || got["is_active"] != true {
			t.Errorf("added %v", got)
		}
		if v := num(t, obj(t, got["long_context"])["cache_write_1h"]); v != "0.000008" {
			t.Errorf("long_context.cache_write_1h = %s", v)
		}
		// It prices calls from now: the public list shows it.
		if p := e.publicPrice("openai", "gpt-4o"); num(t, p["cost_per_input_token"]) != "0.000002" || p["effective_date"] != "2026-11-15T12:00:00Z" {
			t.Errorf("public price %v", p)
		}

		// A version scheduled for later prices calls only from then.
		later := "2026-12-01T00:00:00Z"
		r = e.admin("POST", "/api/admin/prices", `{"provider": "openai", "model": "gpt-4o", "effective_from": "`+later+`", "input": 0.0000015, "output": 0.000006}`)
		if r.status != http.StatusCreated {
			t.Fatalf("add later: %s", r)
		}
		if p := e.publicPrice("openai", "gpt-4o"); num(t, p["cost_per_input_token"]) != "0.000002" {
			t.Errorf("a future version prices calls now: %v", p)
		}
		e.setNow(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		if p := e.publicPrice("openai", "gpt-4o"); num(t, p["cost_per_input_token"]) != "0.0000015" {
			t.Errorf("the scheduled version does not price calls from its time: %v", p)
		}

		h := e.historyOf("openai", "gpt-4o")
		if len(h) != 3 || h[0]["effective_from"] != later || h[1]["effective_from"] != "2026-11-15T12:00:00Z" ||
			h[2]["effective_from"] != "2024-01-01T00:00:00Z" || h[2]["description"] != "GPT-4o" {
			t.Errorf("history, newest first: %v", h)
		}
		if all := e.historyOf("", ""); len(all) != len(billing.DefaultPrices())+2 {
			t.Errorf("full history has %d versions", len(all))
		}
		for _, p := range e.historyOf("gemini", "") {
			if p["provider"] != "gemini" {
				t.Errorf("provider filter let %v through", p)
			}
		}

		// Bad input names the field and stores nothing: a bad field is 422,
		// a body that is not a JSON object at all 400.
		n := len(e.historyOf("", ""))
		bad := []struct {
			body     string
			status   int
			location string
		}{
			{`{"provider": "openai", "model": "gpt-4o", "effective_from": "` + later + `", "input": 1, "output": 1}`, http.StatusConflict, "gpt-4o"},
			{`{"provider": "azure", "model": "gpt-4o", "input": 1, "output": 1}`, http.StatusUnprocessableEntity, "body.provider"},
			{`{"provider": "openai", "model": "m", "input": "cheap", "output": 1}`, http.StatusUnprocessableEntity, "body.input"},
			{`{"provider": "openai", "model": "m", "input": -1, "output": 1}`, http.StatusUnprocessableEntity, "body.input"},
			{`{"provider": "openai", "model": "m", "input": 1e-13, "output": 1}`, http.StatusUnprocessableEntity, "body.input"},
			{`{"provider": "openai", "model": "m", "output": 1}`, http.StatusUnprocessableEntity, "body.input"},
			{`{"provider": "openai", "model": "m", "input": 1, "output": 1, "inptu": 1}`, http.StatusUnprocessableEntity, "body.inptu"},
			{`{"provider": "openai", "model": "", "input": 1, "output": 1}`, http.StatusUnprocessableEntity, "body.model"},
			{`{"provider": "openai", "model": "m", "input": 1, "output": 1, "effective_from": "soon"}`, http.StatusUnprocessableEntity, "body.effective_from"},
			{`{"provider": "openai", "model": "m", "input": 1, "output": 1, "long_context": {"input": 1, "output": 1}}`, http.StatusUnprocessableEntity, "body.long_context.threshold_tokens"},
			{`{"provider": "openai"`, http.StatusBadRequest, "body"},
			{`[]`, http.StatusBadRequest, "body"},
		}
		for _, tt := range bad {
			r := e.admin("POST", "/api/admin/prices", tt.body)
			if r.status != tt.status {
				t.Errorf("%s: %s, want %d", tt.body, r, tt.status)
				continue
			}
			e.problem4xx(r, tt.location)
		}
		e.problem4xx(e.get("/api/admin/prices?provider=azure", testAdminKey), "query.provider")
		if got := len(e.historyOf("", "")); got != n {
			t.Errorf("refused versions were stored: %d versions, want %d", got, n)
		}
	})
}

func TestAdminImportLiteLLM(t *testing.T) {
	sample := readLiteLLMSample(t)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		const at = "2026-11-20T00:00:00Z"
		path := "/api/admin/prices/import?format=litellm&effective_from=" + at
		n := len(e.historyOf("", ""))

		dry := e.ok(e.admin("POST", path+"&dry_run=true", sample))
		if got := len(e.historyOf("", "")); got != n {
			t.Fatalf("a dry run stored %d versions", got-n)
		}
		res := e.ok(e.admin("POST", path, sample))
		fieldSpec := Obj{"field": "string", "old": Any{}, "new": Any{}}
		check(t, "import", res, Obj{"format": Enum{"litellm"}, "dry_run": "bool", "effective_from": "time",
			"added": "int", "unchanged": "int", "aliases_set": "int", "aliases_unchanged": "int",
			"skipped": Arr{Obj{"model": "string", "reason": "string"}},
			"changes": Arr{Obj{"id": "int", "provider": "string", "model": "string", "effective_from": "time",
				"previous_effective_from": Nullable{"time"}, "fields": Arr{fieldSpec}, "price": Any{}}}})
		if integer(t, res["added"]) != 5 || integer(t, res["unchanged"]) != 1 || len(arr(t, res["skipped"])) != 5 ||
			res["effective_from"] != at || res["dry_run"] != false {
			t.Fatalf("import result %v", res)
		}
		if dry["dry_run"] != true || integer(t, dry["added"]) != 5 || len(arr(t, dry["changes"])) != 5 {
			t.Errorf("dry run result %v", dry)
		}
		for _, c := range arr(t, dry["changes"]) {
			if _, ok := obj(t, c)["id"]; ok {
				t.Errorf("a dry-run change has an id: %v", c)
			}
		}
		skipped := map[string]bool{}
		for _, s := range arr(t, res["skipped"]) {
			skipped[obj(t, s)["model"].(string)] = true
		}
		for _, m := range []string{"sample_spec", "azure/gpt-4o", "gemini-2.5-pro", "gemini/gemini-2.0-flash-exp", "dall-e-3"} {
			if !skipped[m] {
				t.Errorf("%s not reported as skipped: %v", m, res["skipped"])
			}
		}
		// The change to gemini-2.5-pro names each field, money exact.
		var pro map[string]any
		for _, c := range arr(t, res["changes"]) {
			if c := obj(t, c); c["model"] == "gemini-2.5-pro" {
				pro = c
			}
		}
		if pro == nil || pro["previous_effective_from"] != "2024-01-01T00:00:00Z" {
			t.Fatalf("gemini-2.5-pro change %v", pro)
		}
		fields := map[string]map[string]any{}
		for _, f := range arr(t, pro["fields"]) {
			f := obj(t, f)
			fields[f["field"].(string)] = f
		}
		if f := fields["cached_input"]; f == nil || f["old"] != nil || num(t, f["new"]) != "0.0000003125" {
			t.Errorf("cached_input change %v", f)
		}
		if f := fields["long_context.cached_input"]; f == nil || num(t, f["new"]) != "0.000000625" {
			t.Errorf("long_context.cached_input change %v", f)
		}
		if len(fields) != 2 {
			t.Errorf("gemini-2.5-pro changes %v, want only the two cache prices", sortedKeys(fields))
		}

		// The new prices apply from their time on, exactly.
		if p := e.publicPrice("anthropic", "claude-sonnet-4-20250514"); p != nil {
			t.Errorf("a version effective later prices calls now: %v", p)
		}
		e.setNow(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
		p := e.publicPrice("anthropic", "claude-sonnet-4-20250514")
		if p == nil {
			t.Fatal("claude-sonnet-4 is not priced at its time")
		}
		lc := obj(t, p["long_context"])
		for k, want := range map[string]string{"cost_per_input_token": "0.000003", "cost_per_cache_write_5m_token": "0.00000375",
			"cost_per_cache_write_1h_token": "0.000006", "cost_per_cached_input_token": "0.0000003", "cost_per_search": "0.01"} {
			if v := num(t, p[k]); v != want {
				t.Errorf("claude-sonnet-4 %s = %s, want %s", k, v, want)
			}
		}
		if num(t, lc["cost_per_input_token"]) != "0.000006" || num(t, lc["cost_per_output_token"]) != "0.0000225" ||
			integer(t, lc["threshold_tokens"]) != 200000 {
			t.Errorf("claude-sonnet-4 long context %v", lc)
		}

		// The same file again adds nothing.
		again := e.ok(e.admin("POST", path, sample))
		if integer(t, again["added"]) != 0 || integer(t, again["unchanged"]) != 6 {
			t.Errorf("re-import %v", again)
		}
	})
}

func TestAdminImportErrors(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		n := len(e.historyOf("", ""))
		good := `{"provider": "openai", "model": "gpt-new", "input": 1, "output": 1}`
		tests := []struct {
			path, body string
			status     int
			location   string
		}{
			{"?format=yaml", `{}`, http.StatusUnprocessableEntity, "query.format"},
			{"?effective_from=tomorrow", `{"prices": []}`, http.StatusUnprocessableEntity, "query.effective_from"},
			{"", `{"prices": [`, http.StatusBadRequest, "file"},
			{"", `{"prices": [` + good + `, {"provider": "azure", "model": "gpt-4o", "input": 1, "output": 1}]}`, http.StatusUnprocessableEntity, "prices[1].provider"},
			{"", `{"prices": [` + good + `, {"provider": "openai", "model": "x", "input": 1, "output": "y"}]}`, http.StatusUnprocessableEntity, "prices[1].output"},
			{"", `{"prices": [` + good + `], "aliases": [{"provider": "nope", "alias": "a", "model": "m"}]}`, http.StatusUnprocessableEntity, "aliases[0].provider"},
			{"", `{"gpt-4o": {"input_cost_per_token": 1}}`, http.StatusUnprocessableEntity, "format litellm"},
			{"?format=litellm", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": "x", "output_cost_per_token": 1}}`,
				http.StatusUnprocessableEntity, `["gpt-4o"].input_cost_per_token`},
			// A different version at the seed's own time would rewrite history.
			{"?effective_from=2024-01-01T00:00:00Z", `{"prices": [` + good + `, {"provider": "openai", "model": "gpt-4", "input": 1, "output": 1}]}`,
				http.StatusConflict, "gpt-4"},
		}
		for _, tt := range tests {
			for _, dry := range []string{"", "dry_run=true"} {
				path := "/api/admin/prices/import" + tt.path
				if dry != "" {
					path += map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")] + dry
				}
				r := e.admin("POST", path, tt.body)
				if r.status != tt.status {
					t.Errorf("%s %s: %s, want %d", path, tt.body, r, tt.status)
					continue
				}
				e.problem4xx(r, tt.location)
			}
		}
		if got := len(e.historyOf("", "")); got != n {
			t.Errorf("refused imports stored %d versions", got-n)
		}

		// A file over the default 1 MiB body limit is fine (LiteLLM's
		// file is about that size): padding with an unsupported model.
		var big bytes.Buffer
		big.WriteString(`{"gpt-big": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},`)
		big.WriteString(`"other/x": {"litellm_provider": "other", "note": "` + strings.Repeat("x", 2<<20) + `"}}`)
		res := e.ok(e.admin("POST", "/api/admin/prices/import?format=litellm", big.String()))
		if integer(t, res["added"]) != 1 {
			t.Errorf("big import %v", res["added"])
		}
	})
}

func TestAdminExportImportRoundTrip(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		e.ok(e.admin("PUT", "/api/admin/model-aliases", `{"provider": "openai", "alias": "gpt4", "model": "gpt-4"}`))
		r := e.admin("POST", "/api/admin/prices", `{"provider": "openai", "model": "gpt-4", "effective_from": "2026-11-01T00:00:00Z", "input": 0.00002, "output": 0.00004}`)
		if r.status != http.StatusCreated {
			t.Fatal(r)
		}

		current := e.ok(e.get("/api/admin/prices/export", testAdminKey))
		all := e.ok(e.get("/api/admin/prices/export?history=true", testAdminKey))
		if got := len(arr(t, current["prices"])); got != len(billing.DefaultPrices()) {
			t.Errorf("export has %d prices, want %d", got, len(billing.DefaultPrices()))
		}
		if got := len(arr(t, all["prices"])); got != len(billing.DefaultPrices())+1 {
			t.Errorf("history export has %d prices", got)
		}
		if !reflect.DeepEqual(current["aliases"], []any{map[string]any{"provider": "openai", "alias": "gpt4", "model": "gpt-4"}}) {
			t.Errorf("export aliases %v", current["aliases"])
		}
		for _, p := range arr(t, current["prices"]) {
			if p := obj(t, p); p["model"] == "gpt-4" && num(t, p["input"]) != "0.00002" {
				t.Errorf("export has the old gpt-4 price: %v", p)
			}
		}
		// What export writes, the pricing file parser reads.
		raw := e.get("/api/admin/prices/export?history=true", testAdminKey).body
		f, _, err := pricefile.Parse(bytes.NewReader(raw), pricefile.FormatAlwrity)
		if err != nil || len(f.Prices) != len(billing.DefaultPrices())+1 || len(f.Aliases) != 1 {
			t.Fatalf("export does not parse back: %v (%d prices)", err, len(f.Prices))
		}

		// Imported into a fresh installation, the history is the same.
		other := newEnv(t, b, defaultNow)
		res := other.ok(other.admin("POST", "/api/admin/prices/import", string(raw)))
		if integer(t, res["added"]) != 1 || integer(t, res["unchanged"]) != int64(len(billing.DefaultPrices())) ||
			integer(t, res["aliases_set"]) != 1 {
			t.Errorf("import of the export: %v", res)
		}
		strip := func(ps []map[string]any) []map[string]any {
			for _, p := range ps {
				delete(p, "id")
			}
			return ps
		}
		if a, b := strip(e.historyOf("", "")), strip(other.historyOf("", "")); !reflect.DeepEqual(a, b) {
			t.Errorf("histories differ:\n%v\n%v", a, b)
		}
		again := other.ok(other.admin("POST", "/api/admin/prices/import", string(raw)))
		if integer(t, again["added"]) != 0 || integer(t, again["aliases_unchanged"]) != 1 {
			t.Errorf("second import of the export: %v", again)
		}
	})
}

// TestAdminExportKeepsScheduledPrices: the default export (prices in
// effect now) also holds the versions scheduled after now, so an export
// imported into a fresh installation keeps a planned price change.
func TestAdminExportKeepsScheduledPrices(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		scheduled := defaultNow.AddDate(0, 1, 0).UTC().Format(time.RFC3339)
		r := e.admin("POST", "/api/admin/prices", `{"provider": "openai", "model": "gpt-4", "effective_from": "`+scheduled+
			`", "input": 0.00002, "output": 0.00004}`)
		if r.status != http.StatusCreated {
			t.Fatal(r)
		}
		raw := e.get("/api/admin/prices/export", testAdminKey).body
		f, _, err := pricefile.Parse(bytes.NewReader(raw), pricefile.FormatAlwrity)
		if err != nil || len(f.Prices) != len(billing.DefaultPrices())+1 {
			t.Fatalf("export: %v, %d prices; want the defaults and the scheduled gpt-4", err, len(f.Prices))
		}
		other := newEnv(t, b, defaultNow)
		other.ok(other.admin("POST", "/api/admin/prices/import", string(raw)))
		if got := len(other.historyOf("openai", "gpt-4")); got != 2 {
			t.Errorf("gpt-4 has %d versions after importing the export; want the current and the scheduled", got)
		}
	})
}

func TestAdminModelAliases(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		put := func(body string) map[string]any {
			t.Helper()
			return e.ok(e.admin("PUT", "/api/admin/model-aliases", body))
		}
		a := put(`{"provider": "openai", "alias": "gpt4", "model": "gpt-4"}`)
		check(t, "alias", a, Obj{"provider": "string", "alias": "string", "model": "string", "changed": "bool"})
		if a["changed"] != true {
			t.Errorf("first set: %v", a)
		}
		if a := put(`{"provider": "openai", "alias": "gpt4", "model": "gpt-4"}`); a["changed"] != false {
			t.Errorf("same set again: %v", a)
		}
		if a := put(`{"provider": "openai", "alias": "gpt4", "model": "gpt-4o"}`); a["changed"] != true {
			t.Errorf("repointed: %v", a)
		}
		put(`{"provider": "gemini", "alias": "pro", "model": "gemini-pro"}`)
		list := e.ok(e.get("/api/admin/model-aliases", testAdminKey))
		check(t, "aliases", list, Obj{"aliases": Arr{Obj{"provider": "string", "alias": "string", "model": "string"}}, "total": "int"})
		want := []any{
			map[string]any{"provider": "gemini", "alias": "pro", "model": "gemini-pro"},
			map[string]any{"provider": "openai", "alias": "gpt4", "model": "gpt-4o"},
		}
		if !reflect.DeepEqual(list["aliases"], want) {
			t.Errorf("aliases %v", list["aliases"])
		}
		if l := e.ok(e.get("/api/admin/model-aliases?provider=gemini", testAdminKey)); integer(t, l["total"]) != 1 {
			t.Errorf("gemini aliases %v", l)
		}

		for _, tt := range []struct{ body, location string }{
			{`{"provider": "azure", "alias": "a", "model": "m"}`, "body.provider"},
			{`{"provider": "openai", "alias": "m", "model": "m"}`, "body.alias"},
			{`{"provider": "openai", "alias": "a b\n", "model": "m"}`, "body.alias"},
			{`{"provider": "openai", "alias": "a"}`, "model"},
		} {
			e.problem4xx(e.admin("PUT", "/api/admin/model-aliases", tt.body), tt.location)
		}
		e.problem4xx(e.get("/api/admin/model-aliases?provider=nope", testAdminKey), "query.provider")

		r := e.do(http.MethodDelete, "/api/admin/model-aliases?provider=openai&alias=gpt4", testAdminKey, nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("delete: %s", r)
		}
		e.problem(e.do(http.MethodDelete, "/api/admin/model-aliases?provider=openai&alias=gpt4", testAdminKey, nil), http.StatusNotFound)
		e.problem4xx(e.do(http.MethodDelete, "/api/admin/model-aliases?provider=openai", testAdminKey, nil), "alias")
		if l := e.ok(e.get("/api/admin/model-aliases", testAdminKey)); integer(t, l["total"]) != 1 {
			t.Errorf("after delete: %v", l)
		}
	})
}
