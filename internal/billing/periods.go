package billing

import (
	"fmt"
	"time"
)

// Period is one usage period: [Start, End). Key is ALwrity's "YYYY-MM" name
// of the month in which the period starts, in the period's time zone.
//
// A period is identified by its Key and its Start together: a subscription
// started mid-month has a first period with the name of the month whose
// calendar period the user was in until then, and the two are kept apart
// (each has its own usage, limits and alerts).
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
// Yearly plans use the same monthly schedule for their limits. Before the
// anchor (the subscription's start) the user had calendar months in UTC,
// the last of them cut short at the anchor.
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
	if t.Before(s.Anchor) {
		t = t.UTC()
		return s.calendar(t.Year(), t.Month())
	}
	// The period starting in t's month may start after t (anchor day later in
	// the month than t), in which case t belongs to the previous one.
	return s.period(s.indexAt(t))
}

// calendar returns the calendar month y-m in UTC, a period before the
// anchor, ending at the anchor if that comes first.
func (s Schedule) calendar(y int, m time.Month) Period {
	start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 1, 0)
	if end.After(s.Anchor) {
		end = s.Anchor.UTC()
	}
	return Period{Key: start.Format("2006-01"), Start: start, End: end}
}

// ByKey returns the period named key ("YYYY-MM"): the schedule's period
// starting in that month, or for a month before the anchor's the calendar
// month. Of the two periods named after the anchor's month (the calendar
// month cut short at the anchor and the first period from it) it returns
// the later, the subscription's.
func (s Schedule) ByKey(key string) (Period, error) {
	y, m, err := ParsePeriodKey(key)
	if err != nil {
		return Period{}, err
	}
	if n := s.index(time.Date(y, m, 15, 12, 0, 0, 0, s.loc())); n >= 0 {
		return s.period(n), nil
	}
	return s.calendar(y, m), nil
}

// Back returns the period named n months before p's name (n ≥ 0), as
// ByKey finds it.
func (s Schedule) Back(p Period, n int) Period {
	y, m, err := ParsePeriodKey(p.Key)
	if err != nil {
		return s.period(s.index(p.Start.In(s.loc())) - n)
	}
	back, _ := s.ByKey(time.Date(y, m-time.Month(n), 1, 0, 0, 0, 0, time.UTC).Format("2006-01"))
	return back
}

// Elapsed returns the fraction of p that has passed at now, as numerator and
// denominator in nanoseconds, clamped to [0, 1].
func (p Period) Elapsed(now time.Time) (num, den int64) {
	den = int64(p.End.Sub(p.Start))
	num = int64(now.Sub(p.Start))
	return max(0, min(num, den)), den
}

// ParsePeriodKey parses ALwrity's "YYYY-MM" billing-period key, from 1970
// to 9998: a period of 9999-12 ends in the year 10000, which no RFC 3339
// timestamp (and so no JSON answer naming the period's end) can hold.
func ParsePeriodKey(key string) (int, time.Month, error) {
	t, err := time.Parse("2006-01", key)
	if err != nil || len(key) != 7 || t.Year() < 1970 || t.Year() > 9998 {
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
