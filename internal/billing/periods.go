package billing

import (
	"fmt"
	"time"
)

// Period is one usage period: [Start, End). Key is ALwrity's "YYYY-MM" name
// of the month in which the period starts, in the period's time zone.
type Period struct {
	Key   string
	Start time.Time
	End   time.Time
}

// AllTime is the Key of the pseudo-period covering all usage.
const AllTime = "all"

// calendarAnchor anchors users without a subscription to calendar months.
var calendarAnchor = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// Schedule generates the monthly usage periods of a subscription: each starts
// at the anchor advanced by whole calendar months, with the day clamped to the
// month's end (Jan 31 → Feb 28/29 → Mar 31), in the schedule's time zone.
// Yearly plans use the same monthly schedule for their limits.
type Schedule struct {
	Anchor   time.Time
	Location *time.Location
}

// CalendarMonths is the schedule of users without a subscription.
func CalendarMonths() Schedule { return Schedule{Anchor: calendarAnchor, Location: time.UTC} }

func (s Schedule) loc() *time.Location {
	if s.Location == nil {
		return time.UTC
	}
	return s.Location
}

// start returns the start of the n-th period after the anchor (n may be
// negative).
func (s Schedule) start(n int) time.Time {
	a := s.Anchor.In(s.loc())
	y, m := a.Year(), int(a.Month())-1+n
	y += floorDiv(m, 12)
	m = m - floorDiv(m, 12)*12 + 1
	day := min(a.Day(), daysIn(y, time.Month(m)))
	return time.Date(y, time.Month(m), day, a.Hour(), a.Minute(), a.Second(), a.Nanosecond(), s.loc())
}

func (s Schedule) period(n int) Period {
	start, end := s.start(n), s.start(n+1)
	return Period{Key: start.Format("2006-01"), Start: start.UTC(), End: end.UTC()}
}

// index returns the number of months between the anchor's month and t's
// month, both read in the schedule's time zone.
func (s Schedule) index(t time.Time) int {
	a, t := s.Anchor.In(s.loc()), t.In(s.loc())
	return (t.Year()-a.Year())*12 + int(t.Month()) - int(a.Month())
}

// After returns the start of the period months periods after the one
// that holds t: the end of a billing cycle of months starting at t.
func (s Schedule) After(t time.Time, months int) time.Time {
	return s.start(s.indexAt(t) + months).UTC()
}

// indexAt is the number of the period that holds t.
func (s Schedule) indexAt(t time.Time) int {
	n := s.index(t)
	for !s.start(n).After(t) && !s.start(n+1).After(t) {
		n++
	}
	for s.start(n).After(t) {
		n--
	}
	return n
}

// At returns the period containing t.
func (s Schedule) At(t time.Time) Period {
	// The period starting in t's month may start after t (anchor day later in
	// the month than t), in which case t belongs to the previous one.
	return s.period(s.indexAt(t))
}

// ByKey returns the period whose start falls in the month named by key
// ("YYYY-MM").
func (s Schedule) ByKey(key string) (Period, error) {
	y, m, err := ParsePeriodKey(key)
	if err != nil {
		return Period{}, err
	}
	return s.period(s.index(time.Date(y, m, 15, 12, 0, 0, 0, s.loc()))), nil
}

// Back returns the period that is n periods before p (n ≥ 0).
func (s Schedule) Back(p Period, n int) Period {
	return s.period(s.index(p.Start.In(s.loc())) - n)
}

// Elapsed returns the fraction of p that has passed at now, as numerator and
// denominator in nanoseconds, clamped to [0, 1].
func (p Period) Elapsed(now time.Time) (num, den int64) {
	den = int64(p.End.Sub(p.Start))
	num = int64(now.Sub(p.Start))
	return max(0, min(num, den)), den
}

// ParsePeriodKey parses ALwrity's "YYYY-MM" billing-period key.
func ParsePeriodKey(key string) (int, time.Month, error) {
	t, err := time.Parse("2006-01", key)
	if err != nil || len(key) != 7 || t.Year() < 1970 || t.Year() > 9999 {
		return 0, 0, InvalidField("billing_period", fmt.Sprintf("%q is not a month in the form YYYY-MM", key), key)
	}
	return t.Year(), t.Month(), nil
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
