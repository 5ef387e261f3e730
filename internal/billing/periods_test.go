package billing_test

import (
	"errors"
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // Zone tests must not depend on the host's zoneinfo.

	"pgregory.net/rapid"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load zone %s: %v", name, err)
	}
	return loc
}

func utcAt(y int, m time.Month, d, h int) time.Time {
	return time.Date(y, m, d, h, 0, 0, 0, time.UTC)
}

// wantPeriod is a period as the tests write it: key and UTC bounds.
type wantPeriod struct {
	key        string
	start, end time.Time
}

func checkPeriod(t *testing.T, what string, got billing.Period, want wantPeriod) {
	t.Helper()
	if got.Key != want.key || !got.Start.Equal(want.start) || !got.End.Equal(want.end) {
		t.Errorf("%s = {%s %s %s}; want {%s %s %s}", what,
			got.Key, got.Start.Format(time.RFC3339), got.End.Format(time.RFC3339),
			want.key, want.start.Format(time.RFC3339), want.end.Format(time.RFC3339))
	}
	if got.Start.Location() != time.UTC || got.End.Location() != time.UTC {
		t.Errorf("%s: Start/End in %s/%s; want UTC", what, got.Start.Location(), got.End.Location())
	}
}

// TestScheduleClampsToMonthEnd walks the first periods of month-end anchors:
// each period starts on the anchor's day or, in shorter months, on the last
// day, and the next period returns to the anchor's day when it can.
func TestScheduleClampsToMonthEnd(t *testing.T) {
	tests := []struct {
		name   string
		anchor time.Time
		want   []wantPeriod
	}{
		{
			name:   "Jan 31 2026",
			anchor: utcAt(2026, time.January, 31, 10),
			want: []wantPeriod{
				{"2026-01", utcAt(2026, time.January, 31, 10), utcAt(2026, time.February, 28, 10)},
				{"2026-02", utcAt(2026, time.February, 28, 10), utcAt(2026, time.March, 31, 10)},
				{"2026-03", utcAt(2026, time.March, 31, 10), utcAt(2026, time.April, 30, 10)},
				{"2026-04", utcAt(2026, time.April, 30, 10), utcAt(2026, time.May, 31, 10)},
				{"2026-05", utcAt(2026, time.May, 31, 10), utcAt(2026, time.June, 30, 10)},
			},
		},
		{
			name:   "Jan 31 2028 leap year",
			anchor: utcAt(2028, time.January, 31, 10),
			want: []wantPeriod{
				{"2028-01", utcAt(2028, time.January, 31, 10), utcAt(2028, time.February, 29, 10)},
				{"2028-02", utcAt(2028, time.February, 29, 10), utcAt(2028, time.March, 31, 10)},
				{"2028-03", utcAt(2028, time.March, 31, 10), utcAt(2028, time.April, 30, 10)},
			},
		},
		{
			name:   "Jan 30 2026",
			anchor: utcAt(2026, time.January, 30, 10),
			want: []wantPeriod{
				{"2026-01", utcAt(2026, time.January, 30, 10), utcAt(2026, time.February, 28, 10)},
				{"2026-02", utcAt(2026, time.February, 28, 10), utcAt(2026, time.March, 30, 10)},
				{"2026-03", utcAt(2026, time.March, 30, 10), utcAt(2026, time.April, 30, 10)},
				{"2026-04", utcAt(2026, time.April, 30, 10), utcAt(2026, time.May, 30, 10)},
			},
		},
		{
			name:   "Jan 29 2026",
			anchor: utcAt(2026, time.January, 29, 10),
			want: []wantPeriod{
				{"2026-01", utcAt(2026, time.January, 29, 10), utcAt(2026, time.February, 28, 10)},
				{"2026-02", utcAt(2026, time.February, 28, 10), utcAt(2026, time.March, 29, 10)},
				{"2026-03", utcAt(2026, time.March, 29, 10), utcAt(2026, time.April, 29, 10)},
			},
		},
		{
			name:   "Jan 29 2028 leap year",
			anchor: utcAt(2028, time.January, 29, 10),
			want: []wantPeriod{
				{"2028-01", utcAt(2028, time.January, 29, 10), utcAt(2028, time.February, 29, 10)},
				{"2028-02", utcAt(2028, time.February, 29, 10), utcAt(2028, time.March, 29, 10)},
			},
		},
		{
			name:   "Dec 31 2025 across the year",
			anchor: utcAt(2025, time.December, 31, 0),
			want: []wantPeriod{
				{"2025-12", utcAt(2025, time.December, 31, 0), utcAt(2026, time.January, 31, 0)},
				{"2026-01", utcAt(2026, time.January, 31, 0), utcAt(2026, time.February, 28, 0)},
				{"2026-02", utcAt(2026, time.February, 28, 0), utcAt(2026, time.March, 31, 0)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := billing.Schedule{Anchor: tt.anchor, Location: time.UTC}
			for i, w := range tt.want {
				// The start itself, a moment inside and the last instant all
				// belong to the period.
				for _, at := range []time.Time{w.start, w.start.Add(time.Hour), w.end.Add(-time.Nanosecond)} {
					checkPeriod(t, fmt.Sprintf("period %d: At(%s)", i, at.Format(time.RFC3339Nano)), s.At(at), w)
				}
				got, err := s.ByKey(w.key)
				if err != nil {
					t.Fatalf("ByKey(%q): %v", w.key, err)
				}
				checkPeriod(t, fmt.Sprintf("ByKey(%q)", w.key), got, w)
				last := len(tt.want) - 1
				checkPeriod(t, fmt.Sprintf("Back(period %d, %d)", last, last-i),
					s.Back(s.At(tt.want[last].start), last-i), w)
			}
		})
	}
}

// TestScheduleBoundaryBelongsToNewPeriod pins that periods are half-open: the
// instant a period ends is the first instant of the next.
func TestScheduleBoundaryBelongsToNewPeriod(t *testing.T) {
	s := billing.Schedule{Anchor: utcAt(2026, time.January, 31, 10)}
	boundary := utcAt(2026, time.February, 28, 10)
	if got := s.At(boundary).Key; got != "2026-02" {
		t.Errorf("At(boundary).Key = %s; want 2026-02", got)
	}
	if got := s.At(boundary.Add(-time.Nanosecond)).Key; got != "2026-01" {
		t.Errorf("At(boundary-1ns).Key = %s; want 2026-01", got)
	}
	// A nil Location means UTC.
	if got := s.At(boundary).Start; !got.Equal(boundary) {
		t.Errorf("At(boundary).Start = %s; want %s", got, boundary)
	}
	// Before the anchor (the subscription's start) the user had calendar
	// months, the last cut short at the anchor; ByKey of the anchor's month
	// is the subscription's period, not the calendar month's remnant.
	checkPeriod(t, "At(before anchor)", s.At(utcAt(2025, time.December, 31, 9)),
		wantPeriod{"2025-12", utcAt(2025, time.December, 1, 0), utcAt(2026, time.January, 1, 0)})
	checkPeriod(t, "At(just before anchor)", s.At(utcAt(2026, time.January, 31, 9)),
		wantPeriod{"2026-01", utcAt(2026, time.January, 1, 0), utcAt(2026, time.January, 31, 10)})
	byKey, err := s.ByKey("2026-01")
	if err != nil {
		t.Fatal(err)
	}
	checkPeriod(t, `ByKey("2026-01")`, byKey,
		wantPeriod{"2026-01", utcAt(2026, time.January, 31, 10), utcAt(2026, time.February, 28, 10)})
	back, err := s.ByKey("2025-11")
	if err != nil {
		t.Fatal(err)
	}
	checkPeriod(t, `ByKey("2025-11")`, back,
		wantPeriod{"2025-11", utcAt(2025, time.November, 1, 0), utcAt(2025, time.December, 1, 0)})
}

func TestCalendarMonths(t *testing.T) {
	s := billing.CalendarMonths()
	tests := []struct {
		at   time.Time
		want wantPeriod
	}{
		{utcAt(2026, time.February, 14, 12), wantPeriod{"2026-02", utcAt(2026, time.February, 1, 0), utcAt(2026, time.March, 1, 0)}},
		{utcAt(2026, time.February, 1, 0), wantPeriod{"2026-02", utcAt(2026, time.February, 1, 0), utcAt(2026, time.March, 1, 0)}},
		{utcAt(2026, time.March, 1, 0).Add(-time.Nanosecond), wantPeriod{"2026-02", utcAt(2026, time.February, 1, 0), utcAt(2026, time.March, 1, 0)}},
		{utcAt(2028, time.February, 29, 23), wantPeriod{"2028-02", utcAt(2028, time.February, 1, 0), utcAt(2028, time.March, 1, 0)}},
		{utcAt(2026, time.December, 31, 23), wantPeriod{"2026-12", utcAt(2026, time.December, 1, 0), utcAt(2027, time.January, 1, 0)}},
		{utcAt(2027, time.January, 1, 0), wantPeriod{"2027-01", utcAt(2027, time.January, 1, 0), utcAt(2027, time.February, 1, 0)}},
		{utcAt(1999, time.July, 4, 0), wantPeriod{"1999-07", utcAt(1999, time.July, 1, 0), utcAt(1999, time.August, 1, 0)}},
		// A time in another zone is placed by its instant, in UTC.
		{time.Date(2026, time.April, 30, 22, 0, 0, 0, time.FixedZone("UTC-3", -3*3600)),
			wantPeriod{"2026-05", utcAt(2026, time.May, 1, 0), utcAt(2026, time.June, 1, 0)}},
	}
	for _, tt := range tests {
		checkPeriod(t, "CalendarMonths().At("+tt.at.Format(time.RFC3339Nano)+")", s.At(tt.at), tt.want)
	}
	got, err := s.ByKey("2026-11")
	if err != nil {
		t.Fatal(err)
	}
	checkPeriod(t, `ByKey("2026-11")`, got, wantPeriod{"2026-11", utcAt(2026, time.November, 1, 0), utcAt(2026, time.December, 1, 0)})
}

// TestScheduleInZone checks subscriptions that name a time zone: periods turn
// at local midnight, keys name the local month, and bounds come back in UTC.
func TestScheduleInZone(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	kol := mustZone(t, "Asia/Kolkata")
	tests := []struct {
		name   string
		anchor time.Time
		loc    *time.Location
		at     time.Time
		want   wantPeriod
	}{
		{
			name: "New York 1st, just before local month end", loc: ny,
			anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, ny),
			// 04:59:59 UTC on Feb 1 is still Jan 31 in New York.
			at:   time.Date(2026, time.February, 1, 4, 59, 59, 0, time.UTC),
			want: wantPeriod{"2026-01", time.Date(2026, time.January, 1, 5, 0, 0, 0, time.UTC), time.Date(2026, time.February, 1, 5, 0, 0, 0, time.UTC)},
		},
		{
			name: "New York 1st, at local month end", loc: ny,
			anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, ny),
			at:     time.Date(2026, time.February, 1, 0, 0, 0, 0, ny),
			want:   wantPeriod{"2026-02", time.Date(2026, time.February, 1, 5, 0, 0, 0, time.UTC), time.Date(2026, time.March, 1, 5, 0, 0, 0, time.UTC)},
		},
		{
			name: "New York 1st, period containing spring forward", loc: ny,
			anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, ny),
			at:     time.Date(2026, time.March, 8, 12, 0, 0, 0, ny),
			want:   wantPeriod{"2026-03", time.Date(2026, time.March, 1, 5, 0, 0, 0, time.UTC), time.Date(2026, time.April, 1, 4, 0, 0, 0, time.UTC)},
		},
		{
			name: "New York 1st, period containing fall back", loc: ny,
			anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, ny),
			at:     time.Date(2026, time.November, 1, 1, 30, 0, 0, ny),
			want:   wantPeriod{"2026-11", time.Date(2026, time.November, 1, 4, 0, 0, 0, time.UTC), time.Date(2026, time.December, 1, 5, 0, 0, 0, time.UTC)},
		},
		{
			name: "New York 31st, Feb 28 to Mar 31 across spring forward", loc: ny,
			anchor: time.Date(2026, time.January, 31, 0, 0, 0, 0, ny),
			at:     time.Date(2026, time.March, 15, 0, 0, 0, 0, time.UTC),
			want:   wantPeriod{"2026-02", time.Date(2026, time.February, 28, 5, 0, 0, 0, time.UTC), time.Date(2026, time.March, 31, 4, 0, 0, 0, time.UTC)},
		},
		{
			name: "New York 31st, just before the local end of the period", loc: ny,
			anchor: time.Date(2026, time.January, 31, 0, 0, 0, 0, ny),
			at:     time.Date(2026, time.March, 31, 3, 59, 59, 0, time.UTC),
			want:   wantPeriod{"2026-02", time.Date(2026, time.February, 28, 5, 0, 0, 0, time.UTC), time.Date(2026, time.March, 31, 4, 0, 0, 0, time.UTC)},
		},
		{
			name: "New York 31st, at the local end of the period", loc: ny,
			anchor: time.Date(2026, time.January, 31, 0, 0, 0, 0, ny),
			at:     time.Date(2026, time.March, 31, 4, 0, 0, 0, time.UTC),
			want:   wantPeriod{"2026-03", time.Date(2026, time.March, 31, 4, 0, 0, 0, time.UTC), time.Date(2026, time.April, 30, 4, 0, 0, 0, time.UTC)},
		},
		{
			name: "Kolkata 1st, just before local month end", loc: kol,
			anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, kol),
			at:     time.Date(2026, time.January, 31, 18, 29, 59, 0, time.UTC),
			want:   wantPeriod{"2026-01", time.Date(2025, time.December, 31, 18, 30, 0, 0, time.UTC), time.Date(2026, time.January, 31, 18, 30, 0, 0, time.UTC)},
		},
		{
			// In UTC it is still January, but in Kolkata February has begun,
			// and the key names the local month.
			name: "Kolkata 1st, just after local month end", loc: kol,
			anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, kol),
			at:     time.Date(2026, time.January, 31, 18, 30, 0, 0, time.UTC),
			want:   wantPeriod{"2026-02", time.Date(2026, time.January, 31, 18, 30, 0, 0, time.UTC), time.Date(2026, time.February, 28, 18, 30, 0, 0, time.UTC)},
		},
		{
			name: "Kolkata 31st, clamped to Feb 28", loc: kol,
			anchor: time.Date(2026, time.January, 31, 0, 0, 0, 0, kol),
			at:     time.Date(2026, time.February, 27, 18, 30, 0, 0, time.UTC),
			want:   wantPeriod{"2026-02", time.Date(2026, time.February, 27, 18, 30, 0, 0, time.UTC), time.Date(2026, time.March, 30, 18, 30, 0, 0, time.UTC)},
		},
		{
			name: "Kolkata 31st, just before the clamped start", loc: kol,
			anchor: time.Date(2026, time.January, 31, 0, 0, 0, 0, kol),
			at:     time.Date(2026, time.February, 27, 18, 29, 59, 0, time.UTC),
			want:   wantPeriod{"2026-01", time.Date(2026, time.January, 30, 18, 30, 0, 0, time.UTC), time.Date(2026, time.February, 27, 18, 30, 0, 0, time.UTC)},
		},
		{
			// An anchor given in UTC is read in the schedule's zone: 20:00 UTC
			// on Jan 31 is 01:30 on Feb 1 in Kolkata.
			name: "Kolkata, anchor written in UTC", loc: kol,
			anchor: time.Date(2026, time.January, 31, 20, 0, 0, 0, time.UTC),
			at:     time.Date(2026, time.March, 10, 0, 0, 0, 0, time.UTC),
			want:   wantPeriod{"2026-03", time.Date(2026, time.February, 28, 20, 0, 0, 0, time.UTC), time.Date(2026, time.March, 31, 20, 0, 0, 0, time.UTC)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := billing.Schedule{Anchor: tt.anchor, Location: tt.loc}
			checkPeriod(t, "At", s.At(tt.at), tt.want)
			got, err := s.ByKey(tt.want.key)
			if err != nil {
				t.Fatal(err)
			}
			checkPeriod(t, "ByKey", got, tt.want)
		})
	}
}

// TestScheduleDSTLengths pins that a period spanning a DST change is a
// calendar month long in local time, not a fixed number of hours.
func TestScheduleDSTLengths(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	s := billing.Schedule{Anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, ny), Location: ny}
	tests := []struct {
		key  string
		want time.Duration
	}{
		{"2026-02", 28 * 24 * time.Hour},
		{"2026-03", 31*24*time.Hour - time.Hour}, // spring forward on Mar 8
		{"2026-04", 30 * 24 * time.Hour},
		{"2026-10", 31 * 24 * time.Hour},
		{"2026-11", 30*24*time.Hour + time.Hour}, // fall back on Nov 1
	}
	for _, tt := range tests {
		p, err := s.ByKey(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.End.Sub(p.Start); got != tt.want {
			t.Errorf("%s lasts %s; want %s", tt.key, got, tt.want)
		}
		if h := p.Start.In(ny).Hour(); h != 0 {
			t.Errorf("%s starts at %02d:00 New York time; want midnight", tt.key, h)
		}
	}
	// An anchor at a local time that is skipped on one day of the year still
	// gives local 02:30 on every other month.
	s = billing.Schedule{Anchor: time.Date(2026, time.January, 8, 2, 30, 0, 0, ny), Location: ny}
	for _, key := range []string{"2026-02", "2026-04", "2026-11", "2027-03"} {
		p, err := s.ByKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if l := p.Start.In(ny); l.Day() != 8 || l.Hour() != 2 || l.Minute() != 30 {
			t.Errorf("%s starts at %s; want the 8th at 02:30 local", key, l)
		}
	}
}

// TestScheduleBack pins that Back walks consecutive months: across a year
// boundary, 24 back, with neither gaps nor repeats, for several anchors.
func TestScheduleBack(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	kol := mustZone(t, "Asia/Kolkata")
	schedules := map[string]billing.Schedule{
		"calendar":          billing.CalendarMonths(),
		"Jan 31 UTC":        {Anchor: utcAt(2026, time.January, 31, 10)},
		"Jan 29 UTC":        {Anchor: utcAt(2026, time.January, 29, 0)},
		"31st New York":     {Anchor: time.Date(2025, time.October, 31, 0, 0, 0, 0, ny), Location: ny},
		"1st Kolkata":       {Anchor: time.Date(2026, time.January, 1, 0, 0, 0, 0, kol), Location: kol},
		"future anchor UTC": {Anchor: utcAt(2030, time.May, 31, 23)},
	}
	for name, s := range schedules {
		t.Run(name, func(t *testing.T) {
			cur := s.At(utcAt(2026, time.March, 15, 12))
			if got := s.Back(cur, 0); got != cur {
				t.Fatalf("Back(p, 0) = %+v; want p %+v", got, cur)
			}
			seen := map[string]bool{cur.Key: true}
			y, m, err := billing.ParsePeriodKey(cur.Key)
			if err != nil {
				t.Fatal(err)
			}
			next := cur
			for n := 1; n <= 24; n++ {
				p := s.Back(cur, n)
				// Periods from the anchor on tile the timeline; before it,
				// calendar months do, and the one the anchor cuts short is
				// not named (its name is the first period's).
				if p.Start.Before(s.Anchor) && !next.Start.Before(s.Anchor) {
					if p.Start.Day() != 1 || !p.End.After(p.Start.AddDate(0, 1, -1)) {
						t.Errorf("Back(p, %d) = %+v before the anchor %s; want a calendar month", n, p, s.Anchor)
					}
				} else if !p.End.Equal(next.Start) {
					t.Errorf("Back(p, %d) = %s ending %s; want it to end where Back(p, %d) starts (%s)", n, p.Key, p.End, n-1, next.Start)
				}
				m--
				if m == 0 {
					y, m = y-1, time.December
				}
				if want := fmt.Sprintf("%04d-%02d", y, m); p.Key != want {
					t.Errorf("Back(p, %d).Key = %s; want %s", n, p.Key, want)
				}
				if seen[p.Key] {
					t.Errorf("Back(p, %d).Key = %s repeats", n, p.Key)
				}
				seen[p.Key] = true
				if got := s.At(p.Start); got != p && !(p.Start.Before(s.Anchor) && got.End.Equal(s.Anchor)) {
					t.Errorf("At(Back(p, %d).Start) = %+v; want %+v", n, got, p)
				}
				next = p
			}
		})
	}
}

func TestPeriodElapsed(t *testing.T) {
	p := billing.CalendarMonths().At(utcAt(2026, time.February, 10, 0)) // 28 days
	den := int64(28 * 24 * time.Hour)
	tests := []struct {
		name    string
		now     time.Time
		wantNum int64
	}{
		{"before start", p.Start.Add(-time.Hour), 0},
		{"at start", p.Start, 0},
		{"one nanosecond in", p.Start.Add(time.Nanosecond), 1},
		{"half way", utcAt(2026, time.February, 15, 0), den / 2},
		{"last instant", p.End.Add(-time.Nanosecond), den - 1},
		{"at end", p.End, den},
		{"long after", p.End.Add(400 * 24 * time.Hour), den},
	}
	for _, tt := range tests {
		num, gotDen := p.Elapsed(tt.now)
		if num != tt.wantNum || gotDen != den {
			t.Errorf("%s: Elapsed = %d/%d; want %d/%d", tt.name, num, gotDen, tt.wantNum, den)
		}
	}
	// The zero period has no length; Elapsed must not report progress in it.
	if num, den := (billing.Period{}).Elapsed(utcAt(2026, time.January, 1, 0)); num != 0 || den != 0 {
		t.Errorf("zero Period Elapsed = %d/%d; want 0/0", num, den)
	}
}

func TestParsePeriodKey(t *testing.T) {
	good := []struct {
		key string
		y   int
		m   time.Month
	}{
		{"2026-11", 2026, time.November},
		{"2026-01", 2026, time.January},
		{"2026-12", 2026, time.December},
		{"1970-01", 1970, time.January},
		{"9998-12", 9998, time.December},
	}
	for _, tt := range good {
		y, m, err := billing.ParsePeriodKey(tt.key)
		if err != nil || y != tt.y || m != tt.m {
			t.Errorf("ParsePeriodKey(%q) = %d, %s, %v; want %d, %s", tt.key, y, m, err, tt.y, tt.m)
		}
	}
	bad := []string{
		"2026-13", "2026-00", "2026-1", "26-11", "2026-11-01", "", " 2026-11", "2026-11 ",
		"abcd-ef", "2026/11", "202611", "+026-11", "-026-11", "1969-12", "2026-+1", "2026-1a",
		"２０２６-11", "2026–11", "9999-01", "9999-12",
	}
	for _, key := range bad {
		y, m, err := billing.ParsePeriodKey(key)
		if err == nil {
			t.Errorf("ParsePeriodKey(%q) = %d, %s; want an error", key, y, m)
			continue
		}
		checkInvalidPeriodKey(t, key, err)
	}
}

func checkInvalidPeriodKey(t *testing.T, key string, err error) {
	t.Helper()
	if code := billing.ErrorCode(err); code != billing.CodeInvalid {
		t.Errorf("ParsePeriodKey(%q) code = %s; want %s", key, code, billing.CodeInvalid)
	}
	var e *billing.Error
	if !errors.As(err, &e) || len(e.Fields) != 1 || e.Fields[0].Location != "billing_period" {
		t.Errorf("ParsePeriodKey(%q) = %#v; want one field error naming billing_period", key, err)
	}
}

func TestByKeyRejectsBadKey(t *testing.T) {
	_, err := billing.CalendarMonths().ByKey("2026-13")
	checkInvalidPeriodKey(t, "2026-13", err)
}

func FuzzParsePeriodKey(f *testing.F) {
	for _, s := range []string{
		"2026-11", "2026-13", "2026-1", "26-11", "2026-11-01", "", " 2026-11", "abcd-ef",
		"+026-11", "-999-01", "0000-00", "1970-01", "9999-12", "2026-\x0011", "2026-1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, m, err := billing.ParsePeriodKey(s)
		if err != nil {
			checkInvalidPeriodKey(t, s, err)
			return
		}
		if back := fmt.Sprintf("%04d-%02d", y, int(m)); back != s {
			t.Fatalf("ParsePeriodKey(%q) = %d, %d, which prints as %q", s, y, m, back)
		}
		// Every accepted key names a period of any schedule.
		p, err := billing.CalendarMonths().ByKey(s)
		if err != nil || p.Key != s {
			t.Fatalf("ByKey(%q) = %+v, %v", s, p, err)
		}
	})
}

var propZones = []string{
	"UTC", "America/New_York", "Asia/Kolkata", "Europe/London", "Australia/Lord_Howe",
	"America/Santiago", "Pacific/Chatham", "Asia/Kathmandu", "America/St_Johns",
}

// TestPropScheduleLaws checks, for random anchors in several zones and random
// times, that At finds a period containing the time, that periods tile the
// timeline, and that ByKey and Back agree with At.
func TestPropScheduleLaws(t *testing.T) {
	locs := make([]*time.Location, len(propZones))
	for i, z := range propZones {
		locs[i] = mustZone(t, z)
	}
	rapid.Check(t, func(t *rapid.T) {
		loc := rapid.SampledFrom(locs).Draw(t, "loc")
		y := rapid.IntRange(1990, 2060).Draw(t, "anchorYear")
		mo := time.Month(rapid.IntRange(1, 12).Draw(t, "anchorMonth"))
		// Days 29-31 are drawn often: they are where clamping happens.
		d := rapid.OneOf(rapid.IntRange(1, 31), rapid.IntRange(28, 31)).Draw(t, "anchorDay")
		d = min(d, time.Date(y, mo+1, 0, 0, 0, 0, 0, time.UTC).Day())
		anchor := time.Date(y, mo, d,
			rapid.IntRange(0, 23).Draw(t, "anchorHour"),
			rapid.SampledFrom([]int{0, 15, 30, 59}).Draw(t, "anchorMinute"), 0, 0, loc)
		s := billing.Schedule{Anchor: anchor, Location: loc}
		if rapid.Bool().Draw(t, "anchorInUTC") {
			s.Anchor = anchor.UTC() // the same instant, written in another zone
		}

		// Times within ±40 years of 2026, drawn to the second, plus ones
		// right at a period boundary.
		base := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
		at := base.Add(time.Duration(rapid.Int64Range(-40*366*86400, 40*366*86400).Draw(t, "offsetSeconds")) * time.Second)
		if rapid.Bool().Draw(t, "onBoundary") {
			at = s.At(at).Start.Add(time.Duration(rapid.IntRange(-1, 1).Draw(t, "nudge")))
		}

		p := s.At(at)
		if at.Before(p.Start) || !at.Before(p.End) {
			t.Fatalf("At(%s) = [%s, %s) does not contain it", at, p.Start, p.End)
		}
		if p.Start.Location() != time.UTC || p.End.Location() != time.UTC {
			t.Fatalf("At(%s) bounds not in UTC: %s, %s", at, p.Start.Location(), p.End.Location())
		}
		if at.Before(s.Anchor) {
			// Before the subscription: UTC calendar months, the last one
			// ending at the anchor.
			y, m, _ := at.UTC().Date()
			start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
			end := start.AddDate(0, 1, 0)
			if end.After(s.Anchor) {
				end = s.Anchor.UTC()
			}
			if want := (billing.Period{Key: start.Format("2006-01"), Start: start, End: end}); p != want {
				t.Fatalf("At(%s) = %+v before the anchor %s; want %+v", at, p, s.Anchor, want)
			}
			if next := s.At(p.End); !next.Start.Equal(p.End) {
				t.Fatalf("At(End=%s) starts at %s; want the previous End", p.End, next.Start)
			}
			if byKey, err := s.ByKey(p.Key); err != nil || (byKey != p && byKey.Start.Before(s.Anchor)) {
				t.Fatalf("ByKey(%q) = %+v, %v; want %+v or the subscription's period of that name", p.Key, byKey, err, p)
			}
			return
		}
		if want := p.Start.In(loc).Format("2006-01"); p.Key != want {
			t.Fatalf("At(%s).Key = %s; want the local month of its start, %s", at, p.Key, want)
		}
		if l := p.End.Sub(p.Start); l < 27*24*time.Hour || l > 32*24*time.Hour {
			t.Fatalf("At(%s) lasts %s; want about a month", at, l)
		}
		next := s.At(p.End)
		if !next.Start.Equal(p.End) {
			t.Fatalf("At(End=%s) starts at %s; want the previous End", p.End, next.Start)
		}
		if next.Key == p.Key {
			t.Fatalf("consecutive periods share key %s", p.Key)
		}
		if got := s.Back(next, 1); got != p {
			t.Fatalf("Back(next, 1) = %+v; want %+v", got, p)
		}
		byKey, err := s.ByKey(p.Key)
		if err != nil {
			t.Fatalf("ByKey(%q): %v", p.Key, err)
		}
		if byKey != p {
			t.Fatalf("ByKey(%q) = %+v; want %+v", p.Key, byKey, p)
		}
	})
}
