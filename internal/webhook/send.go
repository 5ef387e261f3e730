package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/alwrity/alwrity-billing/webhooks"
)

// maxResponseBytes is how much of a response body is read (and dropped),
// so that the connection can be reused.
const maxResponseBytes = 64 << 10

// Body returns the JSON body of j's event. It is the same on every attempt.
func Body(j Job) ([]byte, error) {
	data := j.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return json.Marshal(webhooks.Event{ID: j.EventID, Type: j.EventType, CreatedAt: j.EventCreatedAt.UTC(), Data: data})
}

// send POSTs j signed at now and returns the response status (0 when none
// came).
func (w *Worker) send(ctx context.Context, j Job, now time.Time) (int, error) {
	body, err := Body(j)
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "alwrity-billing-webhooks/1")
	req.Header.Set(webhooks.EventIDHeader, j.EventID)
	req.Header.Set(webhooks.EventTypeHeader, j.EventType)
	req.Header.Set("Alwrity-Delivery-Attempt", strconv.Itoa(j.Attempt))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(now, body, j.Secrets...))
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode, nil
}

// describe says why an attempt did not succeed, without the URL (which
// may carry a receiver's token) that net/http's errors quote.
func describe(status int, err error) string {
	if err == nil {
		return fmt.Sprintf("endpoint answered %d %s", status, http.StatusText(status))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no response within the timeout"
	}
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}
