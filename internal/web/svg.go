package web

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Charts are drawn here as inline SVG, so pages need no chart library and
// render complete before any script runs. Colours come from CSS classes
// (assets/app.css), which keeps contrast in one place and lets the strict
// Content-Security-Policy forbid inline styles. Every chart has role="img"
// and an aria-label that states its data in words.

// f formats a coordinate briefly.
func f(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func esc(s string) string { return html.EscapeString(s) }

// Sparkline draws values as a small line with the area under it, the last
// point marked.
func Sparkline(values []float64, label string) template.HTML {
	const w, h, pad = 120.0, 32.0, 3.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">`,
		f(w), f(h), f(w), f(h), esc(label))
	if len(values) > 0 {
		hi := 0.0
		for _, v := range values {
			hi = math.Max(hi, v)
		}
		x := func(i int) float64 {
			if len(values) == 1 {
				return w / 2
			}
			return pad + float64(i)*(w-2*pad)/float64(len(values)-1)
		}
		y := func(v float64) float64 {
			if hi <= 0 {
				return h - pad
			}
			return h - pad - v/hi*(h-2*pad)
		}
		var pts []string
		for i, v := range values {
			pts = append(pts, f(x(i))+","+f(y(v)))
		}
		fmt.Fprintf(&b, `<polygon class="spark-area" points="%s,%s %s %s,%s"/>`, f(x(0)), f(h-pad), strings.Join(pts, " "), f(x(len(values)-1)), f(h-pad))
		fmt.Fprintf(&b, `<polyline class="spark-line" fill="none" points="%s"/>`, strings.Join(pts, " "))
		last := len(values) - 1
		fmt.Fprintf(&b, `<circle class="spark-dot" cx="%s" cy="%s" r="2.5"/>`, f(x(last)), f(y(values[last])))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// ringText is the share a ring shows in its middle: whole percents from
// 100 on, so "146%" fits where "145.5%" would not.
func ringText(pct float64) string {
	if pct >= 100 {
		return strconv.FormatFloat(math.Round(pct), 'f', 0, 64) + "%"
	}
	return Percent(pct)
}

// level names how full a share is: ok below 80 %, warn below 95 %, else
// danger. The bands match the budget bar's.
func level(pct float64) string {
	switch {
	case pct >= 95:
		return "danger"
	case pct >= 80:
		return "warn"
	}
	return "ok"
}

// Ring draws a usage ring filled to pct (0–100, clamped), with the text in
// its middle.
func Ring(pct float64, center, label string) template.HTML {
	const r = 26.0
	c := 2 * math.Pi * r
	p := math.Max(0, math.Min(100, pct))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="ring ring-%s" viewBox="0 0 64 64" width="72" height="72" role="img" aria-label="%s">`, level(pct), esc(label))
	fmt.Fprintf(&b, `<circle class="ring-track" cx="32" cy="32" r="%s" fill="none" stroke-width="7"/>`, f(r))
	if p > 0 {
		fmt.Fprintf(&b, `<circle class="ring-fill" cx="32" cy="32" r="%s" fill="none" stroke-width="7" stroke-dasharray="%s %s" transform="rotate(-90 32 32)"/>`,
			f(r), f(c*p/100), f(c))
	}
	fmt.Fprintf(&b, `<text x="32" y="36" text-anchor="middle" class="ring-text">%s</text></svg>`, esc(center))
	return template.HTML(b.String())
}

// BudgetBar draws how much of a budget is used, with the warning bands at
// 50, 80 and 95 % and an optional projection marker (negative: none).
func BudgetBar(pct, projected float64, label string) template.HTML {
	const w, h, top, bh = 600.0, 44.0, 6.0, 20.0
	x := func(p float64) float64 { return math.Max(0, math.Min(100, p)) / 100 * w }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="budget" viewBox="0 0 %s %s" preserveAspectRatio="none" width="100%%" height="%s" role="img" aria-label="%s">`,
		f(w), f(h), f(h), esc(label))
	bands := []struct {
		from, to float64
		class    string
	}{{0, 50, "band-ok"}, {50, 80, "band-notice"}, {80, 95, "band-warn"}, {95, 100, "band-danger"}}
	for _, bd := range bands {
		fmt.Fprintf(&b, `<rect class="%s" x="%s" y="%s" width="%s" height="%s"/>`, bd.class, f(x(bd.from)), f(top), f(x(bd.to)-x(bd.from)), f(bh))
	}
	fmt.Fprintf(&b, `<rect class="budget-used budget-%s" x="0" y="%s" width="%s" height="%s"/>`, budgetLevel(pct), f(top+5), f(x(pct)), f(bh-10))
	for _, mark := range []float64{50, 80, 95} {
		fmt.Fprintf(&b, `<line class="budget-mark" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f(x(mark)), f(x(mark)), f(top-4), f(top+bh+4))
	}
	if projected >= 0 {
		fmt.Fprintf(&b, `<line class="budget-projection" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f(x(projected)), f(x(projected)), f(top-6), f(top+bh+6))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Bar is one bar of a bar chart.
type Bar struct {
	Label string
	Value float64
	Text  string // the value as people read it
}

// BarChart draws horizontal bars, one per row, scaled to the largest.
func BarChart(bars []Bar, label string) template.HTML {
	// A narrow drawing keeps its text legible when a phone scales it down;
	// CSS caps its width on a desktop.
	const w, row, labelW, textW = 360.0, 26.0, 110.0, 70.0
	h := math.Max(row, row*float64(len(bars)))
	hi := 0.0
	for _, bar := range bars {
		hi = math.Max(hi, bar.Value)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %s %s" width="100%%" role="img" aria-label="%s">`, f(w), f(h), esc(label))
	for i, bar := range bars {
		y := float64(i) * row
		bw := 0.0
		if hi > 0 {
			bw = bar.Value / hi * (w - labelW - textW)
		}
		fmt.Fprintf(&b, `<text class="bar-label" x="0" y="%s">%s</text>`, f(y+row*0.65), esc(bar.Label))
		fmt.Fprintf(&b, `<rect class="bar bar-%d" x="%s" y="%s" width="%s" height="%s" rx="3"/>`, i%6, f(labelW), f(y+5), f(math.Max(bw, 1)), f(row-10))
		fmt.Fprintf(&b, `<text class="bar-text" x="%s" y="%s">%s</text>`, f(labelW+bw+6), f(y+row*0.65), esc(bar.Text))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Series is one line of a line chart.
type Series struct {
	Name   string
	Values []float64
}

// LineChart draws series over labelled periods with a y axis labelled by
// format; ref draws a dashed reference line (a budget) when it is ≥ 0.
func LineChart(labels []string, series []Series, ref float64, refName string, format func(float64) string, label string) template.HTML {
	const w, h, left, right, top, bottom = 480.0, 240.0, 64.0, 14.0, 14.0, 30.0
	hi := math.Max(ref, 0)
	for _, s := range series {
		for _, v := range s.Values {
			hi = math.Max(hi, v)
		}
	}
	if hi <= 0 {
		hi = 1
	}
	hi = niceCeil(hi)
	n := len(labels)
	x := func(i int) float64 {
		if n <= 1 {
			return left + (w-left-right)/2
		}
		return left + float64(i)*(w-left-right)/float64(n-1)
	}
	y := func(v float64) float64 { return top + (1-v/hi)*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="lines" viewBox="0 0 %s %s" width="100%%" role="img" aria-label="%s">`, f(w), f(h), esc(label))
	// Five intervals of a 1, 2, 2.5 or 5 × 10ⁿ maximum are round numbers.
	for i := 0; i <= 5; i++ {
		v := hi * float64(i) / 5
		fmt.Fprintf(&b, `<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f(left), f(w-right), f(y(v)), f(y(v)))
		fmt.Fprintf(&b, `<text class="axis" x="%s" y="%s" text-anchor="end">%s</text>`, f(left-6), f(y(v)+4), esc(format(v)))
	}
	step := 1
	switch {
	case n > 8:
		step = 3
	case n > 4:
		step = 2
	}
	for i, l := range labels {
		if i%step != 0 && i != n-1 {
			continue
		}
		anchor := "middle"
		if i == n-1 && n > 1 {
			anchor = "end" // the last label would run off the right edge
		}
		fmt.Fprintf(&b, `<text class="axis" x="%s" y="%s" text-anchor="%s">%s</text>`, f(x(i)), f(h-8), anchor, esc(l))
	}
	if ref >= 0 {
		fmt.Fprintf(&b, `<line class="ref" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f(left), f(w-right), f(y(ref)), f(y(ref)))
		fmt.Fprintf(&b, `<text class="ref-text" x="%s" y="%s" text-anchor="end">%s</text>`, f(w-right), f(y(ref)-4), esc(refName))
	}
	for si, s := range series {
		var pts []string
		for i, v := range s.Values {
			pts = append(pts, f(x(i))+","+f(y(v)))
		}
		fmt.Fprintf(&b, `<polyline class="line line-%d" fill="none" points="%s"/>`, si%6, strings.Join(pts, " "))
		for i, v := range s.Values {
			fmt.Fprintf(&b, `<circle class="pt line-%d" cx="%s" cy="%s" r="3"><title>%s %s: %s</title></circle>`,
				si%6, f(x(i)), f(y(v)), esc(s.Name), esc(labels[min(i, n-1)]), esc(format(v)))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten, so axis
// labels are round numbers.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}
