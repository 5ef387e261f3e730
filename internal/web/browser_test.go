package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/web"
)

// The browser tests drive Debian's Chromium against the whole server. They
// fail, never skip, when Chromium is missing: .ci/run installs it.

// chromium returns the browser to drive: $CHROMIUM, else chromium on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed (apt-get install -y chromium; .ci/run does it): the browser tests need it")
	return ""
}

// browser starts a headless Chromium and returns a tab's context whose
// actions time out together after a few minutes.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Do starts the browser and ties it to ctx, which has no
	// deadline; the deadline goes on the context the test's actions use.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	t.Cleanup(cancel)
	return tctx
}

func must(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// navigate loads a page and waits for its main content.
func navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	must(t, ctx, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("main")))
}

// clickAndLoad clicks an element that submits a form or follows a link and
// waits for the next page.
func clickAndLoad(t *testing.T, ctx context.Context, css string) {
	t.Helper()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		t.Fatalf("click %s: %v", css, err)
	}
	must(t, ctx, chromedp.WaitReady(chromedp.CSS("main")))
}

// screenshots is where the tests write screenshots: docs/screenshots with
// ALWRITY_UPDATE_SCREENSHOTS=1 (to refresh the committed ones), else a
// temporary directory, so CI never changes the tree.
func screenshots(t *testing.T) string {
	if os.Getenv("ALWRITY_UPDATE_SCREENSHOTS") == "1" {
		return filepath.Join("..", "..", "docs", "screenshots")
	}
	return t.TempDir()
}

// shoot saves a full-page PNG of the current page.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fitsWidth fails when the page scrolls sideways at the current width:
// wide tables scroll inside their own box, never the page.
func fitsWidth(t *testing.T, ctx context.Context, page string, width int) {
	t.Helper()
	got := eval[int](t, ctx, `document.documentElement.scrollWidth`)
	if got > width {
		t.Errorf("%s is %d px wide at a %d px viewport", page, got, width)
	}
}

// lowContrast lists text on the page whose contrast with its background is
// under WCAG AA: 4.5:1, or 3:1 for large text. The background is the first
// opaque one among the element and its ancestors.
const lowContrastJS = `(() => {
	const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
	const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
		.reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
	const bad = [];
	for (const el of document.querySelectorAll("body *")) {
		if (el.closest("svg, .sr-only, script, style")) continue;
		const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
		if (!own || !el.getClientRects().length) continue;
		const cs = getComputedStyle(el);
		if (cs.visibility === "hidden") continue;
		let bg = null;
		for (let a = el; a; a = a.parentElement) {
			const c = rgb(getComputedStyle(a).backgroundColor);
			if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
		}
		bg = bg || [255, 255, 255];
		const fg = rgb(cs.color).slice(0, 3);
		const opacity = [...function* () { for (let a = el; a; a = a.parentElement) yield Number(getComputedStyle(a).opacity); }()].reduce((x, y) => x * y, 1);
		const mix = fg.map((v, i) => v * opacity + bg[i] * (1 - opacity));
		const [l1, l2] = [lum(mix), lum(bg)].sort((a, b) => b - a);
		const ratio = (l1 + 0.05) / (l2 + 0.05);
		const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
		const large = size >= 24 || (bold && size >= 18.66);
		if (ratio < (large ? 3 : 4.5)) bad.push(el.tagName + "." + el.className + " '" + el.textContent.trim().slice(0, 30) + "' " + ratio.toFixed(2));
	}
	return bad;
})()`

func num(t *testing.T, v any) json.Number {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v is not a number", v)
	}
	return n
}

func TestDashboardsInBrowser(t *testing.T) {
	e := start(t)
	ctx := browser(t)
	shots := screenshots(t)

	// Sign in as demo: the dashboard sends a signed-out browser to the
	// sign-in page and back.
	navigate(t, ctx, e.base+"/dashboard")
	if loc := eval[string](t, ctx, `location.pathname`); loc != "/signin" {
		t.Fatalf("signed out, /dashboard showed %s", loc)
	}
	must(t, ctx, chromedp.SendKeys(chromedp.ID("api_key"), e.demoKey))
	clickAndLoad(t, ctx, `form[action="/signin"] button[type=submit]`)
	must(t, ctx, chromedp.WaitVisible(chromedp.ID("card-cost")))
	if loc := eval[string](t, ctx, `location.pathname`); loc != "/dashboard" {
		t.Fatalf("after sign-in the browser is on %s", loc)
	}
	if cookies := eval[string](t, ctx, `document.cookie`); strings.Contains(cookies, web.SessionCookie) {
		t.Errorf("the session cookie is readable by scripts: %q", cookies)
	}

	t.Run("cards match the JSON API", func(t *testing.T) {
		d := e.apiData("/api/subscription/dashboard/demo", e.demoKey)
		cur := d["current_usage"].(map[string]any)
		cost, err := money.Parse(string(num(t, cur["total_cost"])))
		if err != nil {
			t.Fatal(err)
		}
		calls, _ := num(t, cur["total_calls"]).Int64()
		tokens, _ := num(t, cur["total_tokens"]).Int64()
		if calls == 0 || cost == 0 || tokens == 0 {
			t.Fatalf("the seed left no usage: %v", cur)
		}
		if got, want := text(t, ctx, `[data-testid=cost]`), web.Money(cost); got != want {
			t.Errorf("cost card = %q, JSON total_cost %s = %q", got, cost, want)
		}
		if got, want := text(t, ctx, `[data-testid=calls]`), web.Count(calls); got != want {
			t.Errorf("calls card = %q, JSON total_calls = %q", got, want)
		}
		shown := text(t, ctx, `[data-testid=tokens]`)
		v, err := web.ParseCompact(strings.TrimSuffix(shown, " tokens"))
		if err != nil {
			t.Fatalf("tokens card %q: %v", shown, err)
		}
		// Compact keeps three significant digits: within 0.5 %.
		if math.Abs(v-float64(tokens)) > 0.005*float64(tokens) {
			t.Errorf("tokens card = %q (%v), JSON total_tokens = %d", shown, v, tokens)
		}
		health := e.apiData("/api/subscription/health", "")
		status := health["status"].(string)
		if got := text(t, ctx, `[data-testid=health]`); !strings.EqualFold(got, status) {
			t.Errorf("health card = %q, JSON status = %q", got, status)
		}
		perCall, _ := cost.MulRatio(1, calls)
		if got := text(t, ctx, `[data-testid=cost-per-call]`); got != web.Money(perCall) {
			t.Errorf("cost per call = %q, want %q", got, web.Money(perCall))
		}
		per1K, _ := cost.MulRatio(1000, tokens)
		if got := text(t, ctx, `[data-testid=cost-per-1k]`); got != web.Money(per1K) {
			t.Errorf("cost per 1,000 tokens = %q, want %q", got, web.Money(per1K))
		}
		if got := text(t, ctx, `#usage-status`); got != cur["usage_status"] {
			t.Errorf("usage status = %q, JSON %q", got, cur["usage_status"])
		}
		// One ring per limit of the plan: total calls (40), OpenAI calls
		// (25), Gemini tokens, monthly cost; the sparklines cover six
		// periods of the JSON trends.
		rings := eval[[]string](t, ctx, `[...document.querySelectorAll('.ring-item')].map(e => e.dataset.limit)`)
		for _, want := range []string{"total_calls", "openai_calls", "gemini_tokens", "monthly_cost"} {
			if !slices.Contains(rings, want) {
				t.Errorf("no ring for %s (rings %v)", want, rings)
			}
		}
		if got := text(t, ctx, `[data-limit=total_calls] .ring-figures`); got != web.Count(calls)+" of 40" {
			t.Errorf("total calls ring says %q", got)
		}
		if got := text(t, ctx, `[data-testid=budget]`); !strings.HasPrefix(got, web.Money(cost)+" of $0.50") {
			t.Errorf("budget says %q", got)
		}
		unread, _ := num(t, d["summary"].(map[string]any)["unread_alerts"]).Int64()
		if got := text(t, ctx, `[data-testid=unread-count]`); got != fmt.Sprintf("%d unread", unread) || unread == 0 {
			t.Errorf("unread alerts = %q, JSON %d", got, unread)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('.card svg.spark polyline').length`); n != 4 {
			t.Errorf("%d sparklines, want 4", n)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('.tip').length`); n < 8 {
			t.Errorf("%d help tooltips", n)
		}
	})

	t.Run("refresh by keyboard", func(t *testing.T) {
		before := text(t, ctx, `#last-refreshed`)
		if eval[string](t, ctx, `document.querySelector('main').dataset.refresh`) != "30" {
			t.Error("the dashboard does not refresh itself every 30 s")
		}
		// Tab from the top: the first stop is the skip link, and the
		// Refresh button is reachable by keyboard alone.
		must(t, ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur(); window.focus()`), chromedp.KeyEvent(kb.Tab))
		if cls := eval[string](t, ctx, `document.activeElement.className`); cls != "skip" {
			t.Errorf("the first Tab stop is %q, want the skip link", cls)
		}
		for range 40 {
			if eval[string](t, ctx, `document.activeElement.id`) == "refresh" {
				break
			}
			must(t, ctx, chromedp.KeyEvent(kb.Tab))
		}
		if eval[string](t, ctx, `document.activeElement.id`) != "refresh" {
			t.Fatal("the Refresh button cannot be reached with Tab")
		}
		time.Sleep(1100 * time.Millisecond) // the refresh time shows seconds
		must(t, ctx, chromedp.KeyEvent(kb.Enter))
		got, err := chromedp.Run(ctx, chromedp.Poll[string](
			`document.getElementById('refresh-status').textContent === 'Refreshed' && document.getElementById('last-refreshed').textContent`))
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if got == before {
			t.Errorf("last refreshed still says %q", got)
		}
		if eval[int](t, ctx, `document.querySelectorAll('#card-cost').length`) != 1 {
			t.Error("the refreshed page lost its cards")
		}
	})

	t.Run("refreshes itself every 30 s while visible", func(t *testing.T) {
		// A second tab of the same browser (so the same session), with the
		// page's clock, visibility and timers under the test's control
		// before any page script runs: no test waits 30 real seconds.
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			(function () {
				var realNow = Date.now.bind(Date), realSetInterval = window.setInterval.bind(window);
				window.__skew = 0; window.__vis = "visible"; window.__ticks = 0;
				Date.now = function () { return realNow() + window.__skew; };
				Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: function () { return window.__vis; } });
				window.setInterval = function (fn, ms) { return realSetInterval(function () { window.__ticks++; fn(); }, ms); };
			})();`}); err != nil {
			t.Fatal(err)
		}
		navigate(t, tab, e.base+"/dashboard")
		must(t, tab, chromedp.Evaluate[chromedp.Void](`window.__vis = "hidden"; window.__skew = 31000; window.__ticks = 0`))
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](`window.__ticks >= 3`)); err != nil {
			t.Fatal(err)
		}
		if got := text(t, tab, "#refresh-status"); got != "" {
			t.Fatalf("a hidden page refreshed (status %q)", got)
		}
		must(t, tab, chromedp.Evaluate[chromedp.Void](`window.__vis = "visible"`))
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](`document.getElementById("refresh-status").textContent === "Refreshed"`)); err != nil {
			t.Fatalf("a visible page did not refresh 30 s on: %v", err)
		}
	})

	t.Run("mark an alert read", func(t *testing.T) {
		id := eval[string](t, ctx, `document.querySelector('li.alert').dataset.alertId`)
		clickAndLoad(t, ctx, fmt.Sprintf(`li.alert[data-alert-id="%s"] button[type=submit]`, id))
		must(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("card-cost")))
		if eval[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('li.alert[data-alert-id="%s"]')`, id)) {
			t.Errorf("alert %s is still listed after reload", id)
		}
		alerts := e.apiData("/api/subscription/alerts/demo?unread_only=true", e.demoKey)["alerts"].([]any)
		for _, a := range alerts {
			if string(num(t, a.(map[string]any)["id"])) == id {
				t.Errorf("the API still lists alert %s unread", id)
			}
		}
	})

	shoot(t, ctx, shots, "dashboard-desktop.png")

	t.Run("usage log filters and pages", func(t *testing.T) {
		navigate(t, ctx, e.base+"/dashboard/details")
		must(t, ctx, chromedp.WaitVisible(chromedp.ID("log-table")), chromedp.SetValue(chromedp.ID("f-provider"), "gemini"))
		clickAndLoad(t, ctx, "#f-apply")
		providers := eval[[]string](t, ctx, `[...document.querySelectorAll('#log-table td.provider')].map(e => e.textContent)`)
		logs := e.apiData("/api/subscription/usage-logs?provider=gemini&limit=5000", e.demoKey)
		total, _ := num(t, logs["total_count"]).Int64()
		if len(providers) == 0 || len(providers) != int(min(total, 25)) {
			t.Fatalf("gemini filter shows %d rows, API total %d", len(providers), total)
		}
		for _, p := range providers {
			if !strings.Contains(p, "Gemini") {
				t.Fatalf("gemini filter shows a %s row", p)
			}
		}
		if got := text(t, ctx, "#log-count"); !strings.HasSuffix(got, " of "+web.Count(total)) {
			t.Errorf("count says %q, API total %d", got, total)
		}

		must(t, ctx, chromedp.SetValue(chromedp.ID("f-provider"), ""), chromedp.SetValue(chromedp.ID("f-status"), "500"))
		clickAndLoad(t, ctx, "#f-apply")
		codes := eval[[]string](t, ctx, `[...document.querySelectorAll('#log-table td.status-code')].map(e => e.textContent)`)
		failed := e.apiData("/api/subscription/usage-logs?status_code=500", e.demoKey)
		n, _ := num(t, failed["total_count"]).Int64()
		if len(codes) != int(n) || n == 0 {
			t.Errorf("status 500 filter shows %d rows, API %d", len(codes), n)
		}
		for _, c := range codes {
			if c != "500" {
				t.Errorf("status filter shows %s", c)
			}
		}

		navigate(t, ctx, e.base+"/dashboard/details")
		clickAndLoad(t, ctx, "#log-next")
		if got := text(t, ctx, "#log-count"); !strings.HasPrefix(got, "Showing 26–") {
			t.Errorf("page 2 says %q", got)
		}
	})

	t.Run("details sections", func(t *testing.T) {
		navigate(t, ctx, e.base+"/dashboard/details?months=12")
		// Billing and renewal history as the lifecycle wrote them: an
		// invoice per closed period (June to October) and a start with
		// five renewals.
		invoices, _, err := e.app.DB.Invoices(context.Background(), store.InvoiceFilter{UserID: "demo"})
		if err != nil {
			t.Fatal(err)
		}
		rows := eval[[]string](t, ctx, `[...document.querySelectorAll('#billing-history tbody tr')].map(r => r.querySelector('th').textContent + ' ' + r.cells[6].textContent)`)
		if len(invoices) != 5 || len(rows) != len(invoices) {
			t.Fatalf("billing history shows %v; the store has %d invoices", rows, len(invoices))
		}
		for i, inv := range invoices {
			if want := inv.Period.Key + " " + web.Money(inv.Total); rows[i] != want {
				t.Errorf("invoice row %d = %q, want %q", i, rows[i], want)
			}
		}
		renewals := eval[[]string](t, ctx, `[...document.querySelectorAll('#renewal-history tbody tr td:nth-child(2)')].map(e => e.textContent)`)
		if want := []string{"Renewed", "Renewed", "Renewed", "Renewed", "Renewed", "Started"}; !slices.Equal(renewals, want) {
			t.Errorf("renewal history = %v, want %v", renewals, want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('svg.lines').length`); n != 3 {
			t.Errorf("%d trend charts, want 3", n)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('svg.lines .ref').length`); n != 1 {
			t.Errorf("the cost chart has no budget line")
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('svg.lines')[0].querySelectorAll('circle.pt').length`); n != 12 {
			t.Errorf("12 months of trends have %d points", n)
		}
		// Cost per provider: the three providers demo used, dearest first,
		// with the costs the JSON API reports.
		breakdown := e.apiData("/api/subscription/usage/demo", e.demoKey)["provider_breakdown"].(map[string]any)
		var want []string
		for _, name := range []string{"openai", "gemini", "anthropic"} {
			c, err := money.Parse(string(num(t, breakdown[name].(map[string]any)["cost"])))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, web.Money(c))
		}
		got := eval[[]string](t, ctx, `[...document.querySelectorAll('#provider-table tbody td:nth-child(4)')].map(e => e.textContent)`)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("provider costs = %v, API %v", got, want)
		}
		// Response times are shown in seconds or milliseconds with units.
		if got := text(t, ctx, `[data-testid=avg-response]`); !strings.HasSuffix(got, " s") && !strings.HasSuffix(got, " ms") {
			t.Errorf("average response %q has no unit", got)
		}
		shoot(t, ctx, shots, "details-desktop.png")
	})

	t.Run("contrast", func(t *testing.T) {
		// The check itself catches grey on white.
		navigate(t, ctx, e.base+"/signin")
		must(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => { const p = document.createElement("p"); p.textContent = "faint"; p.style.color = "#bbb"; document.querySelector("main").append(p); })()`))
		if bad := eval[[]string](t, ctx, lowContrastJS); len(bad) != 1 || !strings.Contains(bad[0], "faint") {
			t.Fatalf("the contrast check found %v in a page with one faint line", bad)
		}
		for _, path := range []string{"/dashboard", "/dashboard/details", "/signin"} {
			navigate(t, ctx, e.base+path)
			if bad := eval[[]string](t, ctx, lowContrastJS); len(bad) > 0 {
				t.Errorf("%s has text under WCAG AA contrast: %v", path, bad)
			}
		}
	})

	t.Run("375 px", func(t *testing.T) {
		must(t, ctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
		defer must(t, ctx, chromedp.EmulateViewport(1280, 900))
		navigate(t, ctx, e.base+"/dashboard")
		fitsWidth(t, ctx, "/dashboard", 375)
		shoot(t, ctx, shots, "dashboard-375.png")
		navigate(t, ctx, e.base+"/dashboard/details")
		fitsWidth(t, ctx, "/dashboard/details", 375)
		shoot(t, ctx, shots, "details-375.png")
	})

	t.Run("admin page refuses a user key", func(t *testing.T) {
		res, err := chromedp.Run(ctx, chromedp.NavigateResponse(e.base+"/admin"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 403 {
			t.Errorf("/admin with a user session: %d", res.Status)
		}
		if got := text(t, ctx, "#error-message"); !strings.Contains(got, "admin key") {
			t.Errorf("refusal says %q", got)
		}
	})

	t.Run("admin overview", func(t *testing.T) {
		navigate(t, ctx, e.base+"/dashboard")
		clickAndLoad(t, ctx, `form.signout button`)
		if loc := eval[string](t, ctx, `location.pathname`); loc != "/signin" {
			t.Fatalf("after sign-out the browser is on %s", loc)
		}
		must(t, ctx, chromedp.SendKeys(chromedp.ID("api_key"), adminKey))
		clickAndLoad(t, ctx, `form[action="/signin"] button[type=submit]`)
		must(t, ctx, chromedp.WaitVisible(chromedp.ID("users-table")))
		users := eval[[]string](t, ctx, `[...document.querySelectorAll('#users-table tbody th')].map(e => e.textContent)`)
		for _, u := range []string{"demo", "acme", "globex", "initech"} {
			if !slices.Contains(users, u) {
				t.Errorf("user %s missing from %v", u, users)
			}
		}
		// Default order: highest period cost first, as the API reports it.
		var costs []money.Amount
		for _, u := range users {
			c, err := money.Parse(string(num(t, e.apiData("/api/subscription/usage/"+url.PathEscape(u), adminKey)["total_cost"])))
			if err != nil {
				t.Fatal(err)
			}
			costs = append(costs, c)
		}
		if !slices.IsSortedFunc(costs, func(a, b money.Amount) int { return int(b - a) }) {
			t.Errorf("users not by cost: %v %v", users, costs)
		}
		shown := eval[[]string](t, ctx, `[...document.querySelectorAll('#users-table tbody tr td:nth-child(4)')].map(e => e.textContent)`)
		for i := range users {
			if shown[i] != web.Money(costs[i]) {
				t.Errorf("%s's cost shows %q, API %s", users[i], shown[i], costs[i])
			}
		}
		clickAndLoad(t, ctx, `#users-table thead th:nth-child(5) a`)
		if got := eval[string](t, ctx, `document.querySelector('#users-table thead th:nth-child(5)').getAttribute('aria-sort')`); got != "ascending" {
			t.Errorf("after sorting by calls aria-sort = %q", got)
		}
		calls := eval[[]string](t, ctx, `[...document.querySelectorAll('#users-table tbody tr td:nth-child(5)')].map(e => e.textContent)`)
		if !slices.IsSortedFunc(calls, func(a, b string) int {
			x, _ := web.ParseCompact(a)
			y, _ := web.ParseCompact(b)
			return int(x - y)
		}) {
			t.Errorf("calls not ascending: %v", calls)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#health-table tbody tr').length`); n < 3 {
			t.Errorf("health table has %d providers", n)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#alerts li.alert').length`); n == 0 {
			t.Error("no recent alerts across users")
		}
		if bad := eval[[]string](t, ctx, lowContrastJS); len(bad) > 0 {
			t.Errorf("/admin has text under WCAG AA contrast: %v", bad)
		}
		navigate(t, ctx, e.base+"/admin")
		shoot(t, ctx, shots, "admin-desktop.png")
		must(t, ctx, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
		defer must(t, ctx, chromedp.EmulateViewport(1280, 900))
		navigate(t, ctx, e.base+"/admin")
		fitsWidth(t, ctx, "/admin", 375)
		shoot(t, ctx, shots, "admin-375.png")
	})
}

// TestSwaggerUIOffline opens the API docs in Chromium with every request of
// the page intercepted: each must go to loopback, and any other is failed
// and reported.
func TestSwaggerUIOffline(t *testing.T) {
	e := start(t)
	ctx := browser(t)

	var mu sync.Mutex
	var seen, outside []string
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatalf("enable interception: %v", err)
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, ev.Request.URL)
			local := isLoopback(ev.Request.URL)
			if !local {
				outside = append(outside, ev.Request.URL)
			}
			mu.Unlock()
			if local {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			} else {
				_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
			}
		}
	}()

	must(t, ctx, chromedp.Navigate(e.base+"/api/docs"))
	must(t, ctx, chromedp.WaitVisible(chromedp.CSS(".swagger-ui .info .title")), chromedp.WaitVisible(chromedp.CSS(".opblock")))
	if title := text(t, ctx, ".swagger-ui .info .title"); !strings.Contains(title, "alwrity-billing API") {
		t.Errorf("Swagger UI title = %q", title)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.opblock').length`); n < 10 {
		t.Errorf("Swagger UI shows %d operations", n)
	}
	// Let late requests (fonts, images) arrive before judging.
	must(t, ctx, chromedp.Evaluate[chromedp.Void](`new Promise(r => setTimeout(r, 500))`, chromedp.EvalAwaitPromise))
	mu.Lock()
	defer mu.Unlock()
	if len(outside) > 0 {
		t.Errorf("requests left loopback: %v", outside)
	}
	if !slices.ContainsFunc(seen, func(u string) bool { return strings.Contains(u, "/api/openapi.json") }) {
		t.Errorf("the page never fetched the OpenAPI document; requests: %v", seen)
	}
}

// isLoopback reports whether a request URL stays on this machine: a
// loopback host, or a data:/blob: URL that needs no network.
func isLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob":
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
