package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
)

// AdminPrefix is where the admin API lives.
const AdminPrefix = "/api/admin"

// PricingAdmin is what the admin pricing routes need of the store beyond
// Store: price history, new versions, imports and model aliases.
type PricingAdmin interface {
	PriceHistory(ctx context.Context, provider, model string) ([]billing.Price, error)
	AddPrice(ctx context.Context, p billing.Price, now time.Time) (billing.Price, error)
	ImportCatalog(ctx context.Context, prices []billing.Price, aliases []pricefile.Alias, effectiveFrom time.Time,
		dryRun bool, now time.Time) (pricefile.ImportResult, error)
	ListAliases(ctx context.Context, provider string) ([]pricefile.Alias, error)
	SetAlias(ctx context.Context, a pricefile.Alias) (bool, error)
	DeleteAlias(ctx context.Context, provider, alias string) error
}

// adminPricing serves the admin pricing routes.
type adminPricing struct {
	*Server
	admin PricingAdmin
}

// registerAdminPricing registers the admin routes that change prices
// without code. They exist only when the store can do it (a test's small
// fake store need not).
func (s *Server) registerAdminPricing() {
	admin, ok := s.store.(PricingAdmin)
	if !ok {
		s.logger.Warn("the store cannot administer prices; the admin pricing routes are off")
		return
	}
	a := &adminPricing{Server: s, admin: admin}
	op := func(id, method, path, summary, desc string) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: AdminPrefix + path, Summary: summary, Description: desc,
			Tags: []string{"admin"}, Security: bearer, Errors: []int{http.StatusUnauthorized, http.StatusForbidden}}
	}
	huma.Register(s.api, op("list-price-history", http.MethodGet, "/prices", "Every version of the prices (admin)",
		"All stored price versions, grouped by provider and model, newest first within a model."), a.listPriceHistory)

	add := op("add-price", http.MethodPost, "/prices", "Add a price version (admin)",
		"Stores a new version of a model's price, in the pricing file's entry format (amounts as JSON numbers or "+
			"decimal strings). effective_from defaults to now. Versions are never rewritten: a version for the same "+
			"model and effective_from is a conflict.")
	add.DefaultStatus = http.StatusCreated
	add.Errors = append(add.Errors, http.StatusBadRequest, http.StatusConflict)
	add.SkipValidateBody = true
	huma.Register(s.api, add, a.addPrice)
	// The body is read raw, so that amounts may be numbers or strings and
	// errors name fields as a pricing file's do, and documented as the
	// entry it is.
	s.documentJSONBody(AdminPrefix+"/prices", s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[pricefile.Entry](), true, "PriceEntry"))

	imp := op("import-prices", http.MethodPost, "/prices/import", "Import a pricing file (admin)",
		"Imports a pricing file: alwrity-billing's own format (what export writes) or LiteLLM's "+
			"model_prices_and_context_window.json. Each price equal to the version in effect at its time is unchanged; "+
			"any other is added as a new version. Entries of a LiteLLM file this service cannot price are skipped "+
			"with a reason. One bad entry refuses the whole file; dry_run=true reports without storing.")
	imp.MaxBodyBytes = pricefile.MaxBytes + 1 // huma refuses a body that reaches the limit
	imp.Errors = append(imp.Errors, http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge)
	imp.SkipValidateBody = true
	huma.Register(s.api, imp, a.importPrices)
	s.documentJSONBody(AdminPrefix+"/prices/import", &huma.Schema{Type: huma.TypeObject,
		Description: "A pricing file: alwrity-billing's {\"prices\": […], \"aliases\": […]} or LiteLLM's object keyed by model."})

	huma.Register(s.api, op("export-prices", http.MethodGet, "/prices/export", "Export the prices as a pricing file (admin)",
		"The versions in effect now (or, with history=true, every active version) and the model aliases, "+
			"in the format import reads."), a.exportPrices)

	huma.Register(s.api, op("list-model-aliases", http.MethodGet, "/model-aliases", "Model aliases (admin)",
		"Alias model names priced as another model of the same provider."), a.listAliases)
	set := op("set-model-alias", http.MethodPut, "/model-aliases", "Set a model alias (admin)",
		"Prices calls to alias as calls to model of the same provider, replacing what the alias stood for.")
	set.Errors = append(set.Errors, http.StatusBadRequest)
	huma.Register(s.api, set, a.setAlias)
	del := op("delete-model-alias", http.MethodDelete, "/model-aliases", "Delete a model alias (admin)", "")
	del.DefaultStatus = http.StatusNoContent
	del.Errors = append(del.Errors, http.StatusNotFound)
	huma.Register(s.api, del, a.deleteAlias)
}

// documentJSONBody documents the request body of the POST operation at
// path as JSON of the given schema. How the body is read is not affected:
// huma decided at registration that it is read raw and never validated.
func (s *Server) documentJSONBody(path string, schema *huma.Schema) {
	item := s.api.OpenAPI().Paths[path]
	if item == nil || item.Post == nil || item.Post.RequestBody == nil {
		return
	}
	item.Post.RequestBody.Content = map[string]*huma.MediaType{"application/json": {Schema: schema}}
}

// AdminPriceJSON is one stored price version.
type AdminPriceJSON struct {
	ID       int64 `json:"id"`
	IsActive bool  `json:"is_active"`
	pricefile.Entry
}

func adminPrice(p billing.Price) AdminPriceJSON {
	return AdminPriceJSON{ID: p.ID, IsActive: p.IsActive, Entry: pricefile.FromPrice(p)}
}

// PriceHistoryJSON lists price versions.
type PriceHistoryJSON struct {
	Prices []AdminPriceJSON `json:"prices"`
	Total  int              `json:"total"`
}

type priceHistoryInput struct {
	Provider string `query:"provider" maxLength:"64" doc:"Only this provider's versions."`
	Model    string `query:"model" maxLength:"128" doc:"Only this model's versions."`
}

func (a *adminPricing) listPriceHistory(ctx context.Context, in *priceHistoryInput) (*struct{ Body PriceHistoryJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if in.Provider != "" {
		if err := a.checkProvider(ctx, "query.provider", in.Provider); err != nil {
			return nil, a.problem(ctx, err)
		}
	}
	prices, err := a.admin.PriceHistory(ctx, in.Provider, in.Model)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out := PriceHistoryJSON{Prices: make([]AdminPriceJSON, len(prices)), Total: len(prices)}
	for i, p := range prices {
		out.Prices[i] = adminPrice(p)
	}
	return &struct{ Body PriceHistoryJSON }{out}, nil
}

// The raw bodies are declared as octet streams so that huma neither parses
// nor validates them; documentJSONBody then documents them as the JSON
// they are. Any content type is accepted.
type addPriceInput struct {
	RawBody []byte
}

func (a *adminPricing) addPrice(ctx context.Context, in *addPriceInput) (*struct{ Body AdminPriceJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	e, err := pricefile.ParseEntry(in.RawBody, "body")
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	if err := a.checkProvider(ctx, "body.provider", e.Provider); err != nil {
		return nil, a.problem(ctx, err)
	}
	p, err := a.admin.AddPrice(ctx, e.Price(), a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AdminPriceJSON }{adminPrice(p)}, nil
}

type importPricesInput struct {
	Format        string `query:"format" enum:"alwrity,litellm" default:"alwrity" doc:"The file's format."`
	EffectiveFrom string `query:"effective_from" maxLength:"64" doc:"When entries without their own effective_from take effect (RFC 3339); default now."`
	DryRun        bool   `query:"dry_run" doc:"Report what the import would do without storing anything."`
	RawBody       []byte
}

// ImportResultJSON says what an import did or, in a dry run, would do.
type ImportResultJSON struct {
	Format           string              `json:"format"`
	DryRun           bool                `json:"dry_run"`
	EffectiveFrom    time.Time           `json:"effective_from" doc:"When entries without their own effective_from take effect."`
	Added            int                 `json:"added" doc:"New price versions."`
	Unchanged        int                 `json:"unchanged" doc:"Entries equal to the version already in effect at their time."`
	AliasesSet       int                 `json:"aliases_set"`
	AliasesUnchanged int                 `json:"aliases_unchanged"`
	Skipped          []pricefile.Skipped `json:"skipped" doc:"Entries of a foreign file that were not imported, and why."`
	Changes          []PriceChangeJSON   `json:"changes" doc:"Each added version."`
}

// PriceChangeJSON is one added price version and how it differs from the
// version it follows.
type PriceChangeJSON struct {
	ID                    int64                   `json:"id,omitempty" doc:"The new version's id (absent in a dry run)."`
	Provider              string                  `json:"provider"`
	Model                 string                  `json:"model"`
	EffectiveFrom         time.Time               `json:"effective_from"`
	PreviousEffectiveFrom *time.Time              `json:"previous_effective_from" doc:"The start of the version in effect before; null for a newly priced model."`
	Fields                []pricefile.FieldChange `json:"fields" doc:"The fields that differ from the version in effect before."`
	Price                 pricefile.Entry         `json:"price"`
}

func (a *adminPricing) importPrices(ctx context.Context, in *importPricesInput) (*struct{ Body ImportResultJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	now := a.now()
	eff := now
	if in.EffectiveFrom != "" {
		t, err := pricefile.ParseTime(in.EffectiveFrom)
		if err != nil {
			return nil, a.problem(ctx, billing.InvalidField("query.effective_from", err.Error(), in.EffectiveFrom))
		}
		eff = t
	}
	file, skipped, err := pricefile.Parse(bytes.NewReader(in.RawBody), in.Format)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	res, err := a.admin.ImportCatalog(ctx, file.PriceList(), file.Aliases, eff, in.DryRun, now)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out := ImportResultJSON{
		Format: in.Format, DryRun: in.DryRun, EffectiveFrom: eff.UTC().Truncate(time.Microsecond),
		Added: res.Added, Unchanged: res.Unchanged, AliasesSet: res.AliasesSet, AliasesUnchanged: res.AliasesUnchanged,
		Skipped: nonNil(skipped), Changes: make([]PriceChangeJSON, len(res.Changes)),
	}
	for i, c := range res.Changes {
		pc := PriceChangeJSON{ID: c.Price.ID, Provider: c.Price.Provider, Model: c.Price.ModelName,
			EffectiveFrom: c.Price.EffectiveFrom, Fields: []pricefile.FieldChange{}, Price: pricefile.FromPrice(c.Price)}
		if c.Previous != nil {
			pc.PreviousEffectiveFrom = &c.Previous.EffectiveFrom
			pc.Fields = nonNil(pricefile.Diff(*c.Previous, c.Price))
		}
		out.Changes[i] = pc
	}
	return &struct{ Body ImportResultJSON }{out}, nil
}

type exportPricesInput struct {
	History bool `query:"history" doc:"Every active version instead of those in effect now and those scheduled after now."`
}

func (a *adminPricing) exportPrices(ctx context.Context, in *exportPricesInput) (*struct{ Body pricefile.File }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	now := a.now()
	all, err := a.admin.PriceHistory(ctx, "", "")
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	var current []billing.Price
	if !in.History {
		if current, err = a.store.ListPrices(ctx, "", now); err != nil {
			return nil, a.problem(ctx, err)
		}
	}
	prices := pricefile.ExportPrices(all, current, in.History, now)
	aliases, err := a.admin.ListAliases(ctx, "")
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	f := pricefile.FromPrices(prices, aliases)
	f.Prices = nonNil(f.Prices)
	return &struct{ Body pricefile.File }{f}, nil
}

// AliasesJSON lists model aliases.
type AliasesJSON struct {
	Aliases []pricefile.Alias `json:"aliases"`
	Total   int               `json:"total"`
}

type listAliasesInput struct {
	Provider string `query:"provider" maxLength:"64" doc:"Only this provider's aliases."`
}

func (a *adminPricing) listAliases(ctx context.Context, in *listAliasesInput) (*struct{ Body AliasesJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if in.Provider != "" {
		if err := a.checkProvider(ctx, "query.provider", in.Provider); err != nil {
			return nil, a.problem(ctx, err)
		}
	}
	aliases, err := a.admin.ListAliases(ctx, in.Provider)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AliasesJSON }{AliasesJSON{Aliases: nonNil(aliases), Total: len(aliases)}}, nil
}

// AliasJSON is one model alias and whether setting it changed anything.
type AliasJSON struct {
	pricefile.Alias
	Changed bool `json:"changed" doc:"False when the alias already stood for this model."`
}

func (a *adminPricing) setAlias(ctx context.Context, in *struct{ Body pricefile.Alias }) (*struct{ Body AliasJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if err := pricefile.ValidationError("alias", pricefile.ValidateAlias(in.Body, "body")); err != nil {
		return nil, a.problem(ctx, err)
	}
	if err := a.checkProvider(ctx, "body.provider", in.Body.Provider); err != nil {
		return nil, a.problem(ctx, err)
	}
	changed, err := a.admin.SetAlias(ctx, in.Body)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AliasJSON }{AliasJSON{Alias: in.Body, Changed: changed}}, nil
}

type deleteAliasInput struct {
	Provider string `query:"provider" required:"true" maxLength:"64" doc:"The alias's provider."`
	Alias    string `query:"alias" required:"true" maxLength:"128" doc:"The alias to delete."`
}

func (a *adminPricing) deleteAlias(ctx context.Context, in *deleteAliasInput) (*struct{}, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if err := a.checkProvider(ctx, "query.provider", in.Provider); err != nil {
		return nil, a.problem(ctx, err)
	}
	if err := a.admin.DeleteAlias(ctx, in.Provider, in.Alias); err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{}{}, nil
}
