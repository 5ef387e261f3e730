package web

import (
	"encoding/xml"
	"html/template"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed fails unless s is one well-formed XML element tree.
func wellFormed(t *testing.T, name string, s template.HTML) {
	t.Helper()
	if strings.Contains(string(s), "NaN") || strings.Contains(string(s), "Inf") {
		t.Errorf("%s has a non-finite coordinate: %s", name, s)
	}
	d := xml.NewDecoder(strings.NewReader(string(s)))
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed: %v\n%s", name, err, s)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		t.Fatalf("%s leaves %d elements open", name, depth)
	}
}

func TestChartsAreWellFormedAndEscaped(t *testing.T) {
	evil := `<script>alert("x")</script>&`
	for name, s := range map[string]template.HTML{
		"sparkline":        Sparkline([]float64{1, 5, 2, 8}, evil),
		"sparkline empty":  Sparkline(nil, "none"),
		"sparkline zeros":  Sparkline([]float64{0, 0, 0}, "zeros"),
		"sparkline one":    Sparkline([]float64{3}, "one"),
		"sparkline nan":    Sparkline([]float64{math.NaN(), 1}, "nan"),
		"ring":             Ring(42.5, "42.5%", evil),
		"ring over":        Ring(250, "250%", "over"),
		"ring zero":        Ring(0, "∞", "unlimited"),
		"budget":           BudgetBar(83, 120, evil),
		"budget none":      BudgetBar(0, -1, "none"),
		"bars":             BarChart([]Bar{{evil, 3, evil}, {"b", 0, "$0"}}, evil),
		"bars empty":       BarChart(nil, "empty"),
		"lines":            LineChart([]string{"2026-10", evil}, []Series{{evil, []float64{1, 2}}}, 1.5, evil, Count2, evil),
		"lines one period": LineChart([]string{"2026-11"}, []Series{{"x", []float64{0}}}, -1, "", Count2, "one"),
	} {
		wellFormed(t, name, s)
		if strings.Contains(string(s), "<script") {
			t.Errorf("%s does not escape its text", name)
		}
	}
}

func Count2(v float64) string { return Compact(int64(v)) }

func TestRingAndBudgetLevels(t *testing.T) {
	if s := Ring(50, "50%", "x"); !strings.Contains(string(s), "ring-ok") {
		t.Errorf("50 %% ring: %s", s)
	}
	if s := Ring(85, "85%", "x"); !strings.Contains(string(s), "ring-warn") {
		t.Errorf("85 %% ring: %s", s)
	}
	if s := Ring(97, "97%", "x"); !strings.Contains(string(s), "ring-danger") {
		t.Errorf("97 %% ring: %s", s)
	}
	b := string(BudgetBar(60, -1, "x"))
	for _, band := range []string{"band-ok", "band-notice", "band-warn", "band-danger"} {
		if !strings.Contains(b, band) {
			t.Errorf("budget bar lacks %s", band)
		}
	}
	if got := strings.Count(b, `class="budget-mark"`); got != 3 {
		t.Errorf("budget bar has %d marks, want 50/80/95", got)
	}
	for pct, want := range map[float64]string{0: "ok", 49.9: "ok", 50: "notice", 80: "warn", 95: "danger", 130: "danger"} {
		if got := budgetLevel(pct); got != want {
			t.Errorf("budgetLevel(%v) = %s, want %s", pct, got, want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{1: 1, 1.2: 2, 3: 5, 7: 10, 0.3: 0.5, 23: 25, 140220: 200000} {
		if got := niceCeil(in); math.Abs(got-want) > 1e-9*want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}
