package tracking_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alwrity/alwrity-billing/tracking"
)

type scriptedMeter struct{ refuse bool }

func (s scriptedMeter) Reserve(context.Context, tracking.Call) (string, error) {
	if s.refuse {
		return "", &tracking.LimitError{Provider: "gemini", Limit: "total_calls", Message: "limit", Used: "3", Max: "3"}
	}
	return "rsv_1", nil
}

func (scriptedMeter) Settle(context.Context, string, tracking.Outcome) error {
	return errors.New("ignored")
}

func TestMetricsCountCallsAndRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := tracking.NewMetrics(reg)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, refuse := range []bool{false, false, true} {
		h := tracking.Middleware(tracking.Config{Meter: scriptedMeter{refuse: refuse}, Metrics: m}, handler)
		r := httptest.NewRequest(http.MethodPost, "/api/gemini/generate", nil)
		h.ServeHTTP(httptest.NewRecorder(), r.WithContext(tracking.WithUser(r.Context(), "u1")))
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := mt.GetCounter().GetValue()
			if mt.GetHistogram() != nil {
				v = float64(mt.GetHistogram().GetSampleCount())
			}
			got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	for k, want := range map[string]float64{
		"alwrity_tracked_calls_total{code=418,provider=gemini}":              2,
		"alwrity_tracked_call_duration_seconds{provider=gemini}":             2,
		"alwrity_tracked_refusals_total{provider=gemini,reason=total_calls}": 1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
}
