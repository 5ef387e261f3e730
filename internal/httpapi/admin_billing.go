package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// BillingAdmin is what the admin billing routes need of the store beyond
// Lifecycle: closing periods, settling invoices and setting a
// subscription's state.
type BillingAdmin interface {
	Lifecycle
	CloseDue(ctx context.Context, now time.Time, limit int) (int, error)
	SetInvoiceStatus(ctx context.Context, id int64, status string, now time.Time) (billing.Invoice, error)
	SetSubscriptionState(ctx context.Context, userID string, status *string, autoRenew *bool, now time.Time) (billing.Subscription, error)
}

// adminBilling serves the admin billing routes.
type adminBilling struct {
	*Server
	admin BillingAdmin
}

// exportPageSize is how many invoices an export reads at a time.
const exportPageSize = 1000

func (s *Server) registerAdminBilling() {
	admin, ok := s.store.(BillingAdmin)
	if !ok {
		s.logger.Warn("the store cannot administer billing; the admin billing routes are off")
		return
	}
	a := &adminBilling{Server: s, admin: admin}
	op := func(id, method, path, summary, desc string, errs ...int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: AdminPrefix + path, Summary: summary, Description: desc,
			Tags: []string{"admin"}, Security: bearer, Errors: append([]int{http.StatusUnauthorized, http.StatusForbidden}, errs...)}
	}
	export := op("export-billing-history", http.MethodGet, "/billing-history/export", "Export invoices as CSV (admin)",
		"Every invoice matching the filters, newest period first, as CSV (RFC 4180: a header row, CRLF line ends, "+
			"fields quoted where they need it). Columns: "+csvColumnList()+". Money columns are exact decimal USD "+
			"(0.00155, never exponent notation); times are RFC 3339 UTC, empty when unset.",
		http.StatusBadRequest, http.StatusUnprocessableEntity)
	export.Responses = map[string]*huma.Response{"200": {
		Description: "The invoices as CSV.",
		Content: map[string]*huma.MediaType{"text/csv": {Schema: &huma.Schema{Type: huma.TypeString,
			Description: "CSV text: a header row, then one row per invoice."}}},
	}}
	huma.Register(s.api, export, a.exportInvoices)

	huma.Register(s.api, op("set-invoice-status", http.MethodPost, "/invoices/{invoice_id}/status", "Issue, pay or void an invoice (admin)",
		"Invoices move draft → issued → paid | void: a draft (kept for ALWRITY_INVOICE_REVIEW after its period closes) may be "+
			"issued or voided, an issued invoice paid (payment_date is set) or voided (voided_at is set); paid and void are "+
			"final. Setting the status an invoice has already changes nothing.",
		http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity), a.setInvoiceStatus)

	huma.Register(s.api, op("close-billing-periods", http.MethodPost, "/billing/close", "Close the usage periods that have ended (admin)",
		"Does now what the server does every minute: writes one invoice per subscription and usage period "+
			"that ended at least an hour ago (the hour lets calls in flight at its end settle into it), "+
			"oldest first, then renews, expires or cancels subscriptions whose cycle ended. Running it again, or from "+
			"several servers at once, never writes an invoice twice.",
		http.StatusUnprocessableEntity), a.closePeriods)

	huma.Register(s.api, op("update-subscription", http.MethodPatch, "/subscriptions/{user_id}", "Set a subscription's status or auto-renewal (admin)",
		"Sets the status of the user's current subscription (active or past_due; cancel through the cancel operation) "+
			"and whether it renews at the end of its cycle. A field left out is left as it is.",
		http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity), a.updateSubscription)
}

// csvHeader is the header row of an invoice export.
var csvHeader = []string{"id", "invoice_number", "user_id", "subscription_id", "billing_period", "period_start", "period_end",
	"plan_name", "base_cost", "usage_cost", "overage_cost", "credits", "total_amount", "total_api_calls", "total_tokens",
	"status", "issued_at", "payment_date", "voided_at"}

func csvColumnList() string {
	var b bytes.Buffer
	for i, c := range csvHeader {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c)
	}
	return b.String()
}

// WriteInvoicesCSV writes invoices as CSV, one row per invoice after a
// header row, under RFC 4180 (CRLF line ends; a field holding a comma,
// quote or line break is quoted). Money is exact decimal USD and times
// RFC 3339 UTC, empty when unset.
func WriteInvoicesCSV(w io.Writer, invs []billing.Invoice) error {
	rw := &crlfRecords{w: w}
	cw := csv.NewWriter(&rw.buf)
	write := func(rec []string) error {
		if err := cw.Write(rec); err != nil {
			return err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return rw.flush()
	}
	if err := write(csvHeader); err != nil {
		return err
	}
	tm := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, inv := range invs {
		start, end := inv.Period.Start, inv.Period.End
		if err := write([]string{
			strconv.FormatInt(inv.ID, 10), csvText(inv.Number), csvText(inv.UserID), strconv.FormatInt(inv.SubscriptionID, 10),
			inv.Period.Key, tm(&start), tm(&end), csvText(inv.PlanName),
			inv.Base.String(), inv.UsageCost.String(), inv.Overage.String(), inv.Credits.String(), inv.Total.String(),
			strconv.FormatInt(inv.Calls, 10), strconv.FormatInt(inv.Tokens, 10),
			inv.Status, tm(inv.IssuedAt), tm(inv.PaidAt), tm(inv.VoidedAt),
		}); err != nil {
			return err
		}
	}
	return nil
}

// csvText keeps a text field of the invoice export from being read as a
// formula by a spreadsheet: one that starts with =, +, -, @, a tab or a
// carriage return (a user id or plan name is anyone's text) is prefixed
// with an apostrophe, which spreadsheets show as text. Money columns stay
// numbers (a credit is legitimately negative).
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// crlfRecords ends each record csv.Writer wrote with CRLF, as RFC 4180
// asks. csv.Writer's own UseCRLF would also rewrite line breaks inside
// quoted fields and drop a lone carriage return from a field; this way a
// field's text is written as it is.
type crlfRecords struct {
	w   io.Writer
	buf bytes.Buffer
}

// flush writes the one record in buf, its final "\n" as "\r\n".
func (c *crlfRecords) flush() error {
	b := c.buf.Bytes()
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	c.buf.Reset()
	_, err := io.WriteString(c.w, "\r\n")
	return err
}

// AllInvoices reads every invoice matching f (its Limit and Offset are
// ignored), a page at a time, newest period first.
func AllInvoices(ctx context.Context, lc interface {
	Invoices(ctx context.Context, f store.InvoiceFilter) ([]billing.Invoice, int, error)
}, f store.InvoiceFilter) ([]billing.Invoice, error) {
	var out []billing.Invoice
	f.Limit, f.Offset = exportPageSize, 0
	for {
		page, total, err := lc.Invoices(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < f.Limit || len(out) >= total {
			return out, nil
		}
		f.Offset += len(page)
	}
}

type exportInvoicesInput struct {
	BillingPeriod string `query:"billing_period" maxLength:"7" doc:"Only this usage period (YYYY-MM)."`
	UserID        string `query:"user_id" maxLength:"128" doc:"Only this user's invoices."`
}

type csvOutput struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               []byte
}

func (a *adminBilling) exportInvoices(ctx context.Context, in *exportInvoicesInput) (*csvOutput, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	name := "invoices"
	if in.BillingPeriod != "" {
		if err := checkPeriodKey("query.billing_period", in.BillingPeriod); err != nil {
			return nil, a.problem(ctx, err)
		}
		name += "-" + in.BillingPeriod
	}
	invs, err := AllInvoices(ctx, a.admin, store.InvoiceFilter{UserID: in.UserID, BillingPeriod: in.BillingPeriod})
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	var b bytes.Buffer
	if err := WriteInvoicesCSV(&b, invs); err != nil {
		return nil, a.problem(ctx, err)
	}
	return &csvOutput{ContentType: "text/csv; charset=utf-8; header=present",
		ContentDisposition: `attachment; filename="` + name + `.csv"`, Body: b.Bytes()}, nil
}

// AdminInvoiceJSON is an invoice with whose it is.
type AdminInvoiceJSON struct {
	UserID         string `json:"user_id"`
	SubscriptionID int64  `json:"subscription_id"`
	InvoiceJSON
}

type setInvoiceStatusInput struct {
	InvoiceID int64 `path:"invoice_id" minimum:"1" doc:"The invoice's id (billing_history id)."`
	Body      struct {
		Status string `json:"status" enum:"issued,paid,void" doc:"issued (a draft), paid (an issued invoice) or void (either); paid and void are final."`
	}
}

func (a *adminBilling) setInvoiceStatus(ctx context.Context, in *setInvoiceStatusInput) (*struct{ Body AdminInvoiceJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	inv, err := a.admin.SetInvoiceStatus(ctx, in.InvoiceID, in.Body.Status, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AdminInvoiceJSON }{AdminInvoiceJSON{UserID: inv.UserID, SubscriptionID: inv.SubscriptionID, InvoiceJSON: invoiceJSON(inv)}}, nil
}

type closePeriodsInput struct {
	Limit int `query:"limit" minimum:"1" maximum:"100000" default:"10000" doc:"Close at most this many periods in this request."`
}

// ClosePeriodsJSON says how many usage periods a close closed.
type ClosePeriodsJSON struct {
	Closed int       `json:"closed" doc:"Usage periods closed (one invoice each)."`
	More   bool      `json:"more" doc:"The limit was reached: periods may be left to close."`
	At     time.Time `json:"at" doc:"The time periods were closed up to."`
}

func (a *adminBilling) closePeriods(ctx context.Context, in *closePeriodsInput) (*struct{ Body ClosePeriodsJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	now := a.now()
	n, err := a.admin.CloseDue(ctx, now, in.Limit)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body ClosePeriodsJSON }{ClosePeriodsJSON{Closed: n, More: n >= in.Limit, At: now.UTC().Truncate(time.Microsecond)}}, nil
}

type updateSubscriptionInput struct {
	UserPath
	Body struct {
		Status    *string `json:"status,omitempty" enum:"active,past_due" doc:"active or past_due."`
		AutoRenew *bool   `json:"auto_renew,omitempty" doc:"Whether the subscription renews at the end of its cycle."`
	}
}

// AdminSubscriptionJSON is a user's current subscription as an admin sees it.
type AdminSubscriptionJSON struct {
	UserID string `json:"user_id"`
	PlanID int64  `json:"plan_id"`
	SubscriptionJSON
	PendingPlanID       *int64     `json:"pending_plan_id"`
	PendingBillingCycle *string    `json:"pending_billing_cycle"`
	CancelAtPeriodEnd   bool       `json:"cancel_at_period_end"`
	CancelledAt         *time.Time `json:"cancelled_at"`
}

func adminSubscription(s billing.Subscription) AdminSubscriptionJSON {
	out := AdminSubscriptionJSON{UserID: s.UserID, PlanID: s.PlanID,
		SubscriptionJSON: SubscriptionJSON{ID: s.ID, BillingCycle: s.BillingCycle, CurrentPeriodStart: s.CurrentPeriodStart.UTC(),
			CurrentPeriodEnd: s.CurrentPeriodEnd.UTC(), Status: s.Status, AutoRenew: s.AutoRenew, TimeZone: s.TimeZone,
			CreatedAt: s.CreatedAt.UTC()},
		PendingPlanID: s.PendingPlanID, CancelAtPeriodEnd: s.CancelAtPeriodEnd, CancelledAt: utcPtr(s.CancelledAt)}
	if s.PendingCycle != "" {
		out.PendingBillingCycle = &s.PendingCycle
	}
	return out
}

func (a *adminBilling) updateSubscription(ctx context.Context, in *updateSubscriptionInput) (*struct{ Body AdminSubscriptionJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if in.Body.Status == nil && in.Body.AutoRenew == nil {
		return nil, a.problem(ctx, billing.InvalidField("body", "give status or auto_renew (or both)", nil))
	}
	s, err := a.admin.SetSubscriptionState(ctx, in.UserID, in.Body.Status, in.Body.AutoRenew, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AdminSubscriptionJSON }{adminSubscription(s)}, nil
}
