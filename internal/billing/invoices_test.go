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
		types := []string{LineBase, LineUpgrade, LineDowngrade, LineCredit, LineOverage}
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
