package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// TestLazyDeadline: the lazily timed context behaves as
// context.WithTimeout does, whether or not anything waited on it.
func TestLazyDeadline(t *testing.T) {
	t.Run("live", func(t *testing.T) {
		parent := context.WithValue(context.Background(), ctxKey{}, "v")
		ctx, cancel := withLazyTimeout(parent, time.Hour)
		defer cancel()
		if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
			t.Errorf("Deadline = %v, %v", d, ok)
		}
		if err := ctx.Err(); err != nil {
			t.Errorf("Err = %v on a live context", err)
		}
		if ctx.Value(ctxKey{}) != "v" {
			t.Error("the parent's values are lost")
		}
		if c, _ := ctx.(*lazyDeadline).started(); c != nil {
			t.Error("a context nothing waited on started its timer")
		}
		select {
		case <-ctx.Done():
			t.Error("Done is closed on a live context")
		default:
		}
		if ctx.Value(ctxKey{}) != "v" {
			t.Error("the parent's values are lost once started")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := withLazyTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		child, cancelChild := context.WithCancel(ctx)
		defer cancelChild()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done never closed at the deadline")
		}
		<-child.Done()
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Errorf("Err = %v, child %v; want DeadlineExceeded", ctx.Err(), child.Err())
		}
		if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			t.Errorf("Cause = %v", context.Cause(ctx))
		}
	})
	t.Run("deadline passed, nothing waited", func(t *testing.T) {
		ctx, cancel := withLazyTimeout(context.Background(), time.Millisecond)
		defer cancel()
		time.Sleep(5 * time.Millisecond)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("Err = %v, want DeadlineExceeded", ctx.Err())
		}
		select {
		case <-ctx.Done():
		default:
			t.Error("Err reported the end but Done is open")
		}
	})
	t.Run("parent cancelled", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		ctx, cancel := withLazyTimeout(parent, time.Hour)
		defer cancel()
		cancelParent()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v after the parent ended, want Canceled", ctx.Err())
		}
		<-ctx.Done()
		// Err keeps its first answer even once the deadline passes.
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v later", ctx.Err())
		}
	})
	t.Run("parent cancelled while waiting", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		ctx, cancel := withLazyTimeout(parent, time.Hour)
		defer cancel()
		done := ctx.Done()
		cancelParent()
		<-done
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v, want Canceled", ctx.Err())
		}
	})
	t.Run("released", func(t *testing.T) {
		ctx, cancel := withLazyTimeout(context.Background(), time.Hour)
		done := ctx.Done()
		cancel()
		<-done
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v after release, want Canceled", ctx.Err())
		}
		ctx, cancel = withLazyTimeout(context.Background(), time.Hour)
		cancel()
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err = %v after release, nothing waited, want Canceled", ctx.Err())
		}
		<-ctx.Done()
	})
}
