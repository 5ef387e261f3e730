package billing

import (
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
	"pgregory.net/rapid"
)

// TestPropProratedPartsSumToWhole: a cycle cut at random seconds into
// parts, each part priced the way plan changes are (the difference of two
// prorations), gives parts that sum to the whole price exactly, each within
// one rounding unit of its exact share.
func TestPropProratedPartsSumToWhole(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		price := money.Amount(rapid.Int64Range(0, int64(money.MustParse("100000"))).Draw(t, "price"))
		anchor := time.Unix(rapid.Int64Range(0, 4e9).Draw(t, "anchor"), 0).UTC()
		months := rapid.SampledFrom([]int{1, 12}).Draw(t, "months")
		s := Schedule{Anchor: anchor}
		cyc := Period{Start: anchor, End: s.After(anchor, months)}
		span := cyc.End.Unix() - cyc.Start.Unix()
		cuts := rapid.SliceOfN(rapid.Int64Range(1, span-1), 0, 8).Draw(t, "cuts")
		slices.Sort(cuts)
		points := append(append([]int64{0}, cuts...), span)
		var sum money.Amount
		for i := 0; i+1 < len(points); i++ {
			from, err := Prorate(price, cyc, cyc.Start.Add(time.Duration(points[i])*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			to, err := Prorate(price, cyc, cyc.Start.Add(time.Duration(points[i+1])*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			part := from - to
			exact := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(price)), big.NewInt(points[i+1]-points[i])), big.NewInt(span))
			diff := new(big.Rat).Sub(new(big.Rat).SetInt64(int64(part)), exact)
			if diff.Abs(diff).Cmp(big.NewRat(1, 1)) > 0 {
				t.Fatalf("part %d of %s over [%d, %d) of %d s = %d units; exact %s", i, price, points[i], points[i+1], span, part, exact.FloatString(3))
			}
			sum += part
		}
		if sum != price {
			t.Fatalf("parts sum to %d; want the whole %d", sum, price)
		}
	})
}

// TestPropInvoiceTotalIsSumOfLines: whatever the lines, the total is their
// exact sum and the base, overage and credit columns add up to it.
func TestPropInvoiceTotalIsSumOfLines(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		types := []string{LineBase, LineUpgrade, LineDowngrade, LineCredit, LineOverage, LineAdjustment}
		n := rapid.IntRange(0, 20).Draw(t, "n")
		inv := Invoice{}
		var want money.Amount
		for range n {
			a := money.Amount(rapid.Int64Range(-int64(money.MustParse("1000")), int64(money.MustParse("1000"))).Draw(t, "amount"))
			inv.Lines = append(inv.Lines, InvoiceLine{Type: rapid.SampledFrom(types).Draw(t, "type"), Amount: a})
			want += a
		}
		if err := inv.Totals(); err != nil {
			t.Fatal(err)
		}
		if inv.Total != want || inv.Base+inv.Overage-inv.Credits != inv.Total {
			t.Fatalf("total %d (base %d + overage %d − credits %d); lines sum to %d", inv.Total, inv.Base, inv.Overage, inv.Credits, want)
		}
	})
}

// TestOverageSinceMark: a plan that took effect at a mark prices only the
// calls and each provider's tokens above it, against its own limits.
func TestOverageSinceMark(t *testing.T) {
	plan := Plan{SoftLimits: true, TotalCallsLimit: Ptr[int64](10), OveragePerCall: Ptr(money.MustParse("0.01")),
		OveragePer1KTokens: Ptr(money.MustParse("0.002")),
		ProviderLimits:     map[string]ProviderLimit{"openai": {Tokens: Ptr[int64](1000)}}}
	p := Period{Key: "2024-06", Start: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)}
	usage := func(calls, tokens int64) PeriodUsage {
		c := Counters{Calls: calls, TokensInput: tokens}
		return PeriodUsage{Period: p, Total: c, ByProvider: map[string]Counters{"openai": c}}
	}
	for _, tc := range []struct {
		name        string
		now, mark   PeriodUsage
		wantAmounts []string
	}{
		{"no mark", usage(15, 1500), PeriodUsage{}, []string{"0.05", "0.001"}},
		{"within the limits above the mark", usage(15, 1500), usage(10, 1000), nil},
		{"above the limits above the mark", usage(27, 2800), usage(15, 1500), []string{"0.02", "0.0006"}},
		{"nothing since the mark", usage(15, 1500), usage(15, 1500), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := Overage(plan, UsageSince(tc.now, tc.mark), p)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lines {
				got = append(got, l.Amount.String())
			}
			if !slices.Equal(got, tc.wantAmounts) {
				t.Errorf("overage %v; want %v", got, tc.wantAmounts)
			}
		})
	}
}
