package httpapi

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealthCacheSharesOneComputation(t *testing.T) {
	var c healthCache
	var computed atomic.Int64
	release := make(chan struct{})
	compute := func() (healthFigures, error) {
		computed.Add(1)
		<-release
		return healthFigures{requests: 7}, nil
	}
	key := healthKey{second: 100, window: time.Minute, mark: 5}
	arrived := time.Now()
	var wg sync.WaitGroup
	results := make([]int64, 8)
	for i := range results {
		wg.Go(func() {
			f, err := c.get(key, arrived, compute)
			if err != nil {
				t.Error(err)
			}
			results[i] = f.requests
		})
	}
	time.Sleep(10 * time.Millisecond) // let the callers queue up
	close(release)
	wg.Wait()
	if n := computed.Load(); n != 1 {
		t.Errorf("%d computations for one key, want 1", n)
	}
	for i, r := range results {
		if r != 7 {
			t.Errorf("caller %d got %d requests, want 7", i, r)
		}
	}
}

func TestHealthCacheReuse(t *testing.T) {
	var c healthCache
	n := int64(0)
	compute := func() (healthFigures, error) { n++; return healthFigures{requests: n}, nil }
	get := func(key healthKey, arrived time.Time) int64 {
		t.Helper()
		f, err := c.get(key, arrived, compute)
		if err != nil {
			t.Fatal(err)
		}
		return f.requests
	}
	before := time.Now()
	k := healthKey{second: 100, window: time.Minute, mark: 5}
	if got := get(k, before); got != 1 {
		t.Fatalf("first = %d", got)
	}
	// Same second and mark: reused, whenever the request arrived.
	if got := get(k, time.Now()); got != 1 {
		t.Errorf("same key = %d, want the reused 1", got)
	}
	// A new mark: reused only by a request that arrived before the result
	// was computed, since the result saw everything committed before it.
	k2 := k
	k2.mark = 6
	if got := get(k2, before); got != 1 {
		t.Errorf("new mark, request older than the result = %d, want 1", got)
	}
	if got := get(k2, time.Now()); got != 2 {
		t.Errorf("new mark, newer request = %d, want a new result 2", got)
	}
	// Another second or window: never reused.
	k3 := k2
	k3.second++
	if got := get(k3, before); got != 3 {
		t.Errorf("next second = %d, want 3", got)
	}
	k4 := k3
	k4.window = time.Hour
	if got := get(k4, before); got != 4 {
		t.Errorf("another window = %d, want 4", got)
	}
	// Errors are not cached.
	fail := errors.New("down")
	if _, err := c.get(healthKey{second: 200}, time.Now(), func() (healthFigures, error) { return healthFigures{}, fail }); !errors.Is(err, fail) {
		t.Errorf("err = %v", err)
	}
	if got := get(healthKey{second: 200}, time.Now()); got != 5 {
		t.Errorf("after an error = %d, want a new result 5", got)
	}
}
