package tracking

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ClientConfig configures a remote meter.
type ClientConfig struct {
	// BaseURL is the alwrity-billing server, e.g. http://billing:8000.
	BaseURL string
	// APIKey is an admin key (it acts for every user of the service).
	APIKey string
	HTTP   *http.Client
	// Buffer bounds the settlements waiting to be sent (default 10,000).
	Buffer int
	// BatchSize is the most settlements one request carries (default 100).
	BatchSize int
	// FlushEvery sends a partial batch after this long (default 200 ms).
	FlushEvery time.Duration
	// RetryFor is how long a batch is retried, with exponential backoff,
	// before it is given up (default 10 minutes; reservations expire too).
	RetryFor time.Duration
	// OnError is told about batches refused or given up.
	OnError func(error)
}

// Client is a Meter that talks to a remote alwrity-billing server.
// Reservations are synchronous (admission must be decided before the call);
// settlements are queued and sent in batches from one goroutine, retried
// with the same event ids, so a resend is counted once.
type Client struct {
	cfg   ClientConfig
	queue chan pending
	done  chan struct{}
	stop  chan struct{}
	once  sync.Once
	// mu orders Settle against Close: Settle enqueues under the read lock,
	// and run takes the write lock once stop is closed before its last
	// drain, so a settlement Settle accepted is always drained, never left
	// in the queue after run has returned.
	mu sync.RWMutex
	// aborted ends sending and retrying when Close's context ends, so a
	// closed client leaves no goroutine retrying behind it.
	aborted context.Context
	abort   context.CancelFunc
}

type pending struct {
	event eventBody
}

// eventBody is POST /usage's event, with the reservation it settles.
type eventBody struct {
	EventID            string  `json:"event_id"`
	ReservationID      string  `json:"reservation_id"`
	UserID             string  `json:"user_id"`
	Provider           string  `json:"provider"`
	Model              string  `json:"model,omitempty"`
	Endpoint           string  `json:"endpoint,omitempty"`
	Method             string  `json:"method,omitempty"`
	TokensInput        int64   `json:"tokens_input,omitempty"`
	TokensOutput       int64   `json:"tokens_output,omitempty"`
	TokensCachedInput  int64   `json:"tokens_cached_input,omitempty"`
	TokensCacheWrite5m int64   `json:"tokens_cache_write_5m,omitempty"`
	TokensCacheWrite1h int64   `json:"tokens_cache_write_1h,omitempty"`
	TokensReasoning    int64   `json:"tokens_reasoning,omitempty"`
	RequestCount       int64   `json:"request_count,omitempty"`
	SearchCount        int64   `json:"search_count,omitempty"`
	ImageCount         int64   `json:"image_count,omitempty"`
	PageCount          int64   `json:"page_count,omitempty"`
	StatusCode         int     `json:"status_code"`
	ResponseTime       float64 `json:"response_time"`
	Timestamp          string  `json:"timestamp"`
}

// NewClient starts a remote meter; Close flushes and stops it.
func NewClient(cfg ClientConfig) *Client {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10_000
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > 1000 {
		cfg.BatchSize = 100
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 200 * time.Millisecond
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 10 * time.Minute
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	c := &Client{cfg: cfg, queue: make(chan pending, cfg.Buffer), done: make(chan struct{}), stop: make(chan struct{})}
	c.aborted, c.abort = context.WithCancel(context.Background())
	go c.run()
	return c
}

// Reserve holds one call on the server.
func (c *Client) Reserve(ctx context.Context, call Call) (string, error) {
	body, _ := json.Marshal(map[string]any{"user_id": call.UserID, "provider": call.Provider, "model": call.Model,
		"tokens_requested": call.Tokens})
	status, resp, err := c.post(ctx, "/api/subscription/reserve", body)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch status {
	case http.StatusCreated, http.StatusOK:
		var ok struct {
			Data struct {
				ReservationID string `json:"reservation_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(resp, &ok); err != nil || ok.Data.ReservationID == "" {
			return "", fmt.Errorf("%w: unreadable reservation", ErrUnavailable)
		}
		return ok.Data.ReservationID, nil
	case http.StatusTooManyRequests:
		var p struct {
			Message   string  `json:"message"`
			Provider  *string `json:"provider"`
			UsageInfo struct {
				CurrentCalls json.Number `json:"current_calls"`
				Limit        json.Number `json:"limit"`
				Type         string      `json:"type"`
			} `json:"usage_info"`
		}
		_ = json.Unmarshal(resp, &p)
		le := &LimitError{Limit: p.UsageInfo.Type, Message: p.Message, Used: p.UsageInfo.CurrentCalls.String(), Max: p.UsageInfo.Limit.String()}
		if p.Provider != nil {
			le.Provider = *p.Provider
		}
		return "", le
	}
	return "", fmt.Errorf("%w: reserve answered %d: %.200s", ErrUnavailable, status, resp)
}

// Settle queues the call's usage. It waits for room in the buffer only
// until ctx is done, so a request is never held forever.
func (c *Client) Settle(ctx context.Context, id string, o Outcome) error {
	o = cleanOutcome(o)
	ts := o.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	u := o.Usage
	ev := eventBody{EventID: id, ReservationID: id, UserID: o.UserID, Provider: o.Provider, Model: u.Model, Endpoint: o.Endpoint, Method: o.Method,
		TokensInput: u.TokensInput, TokensOutput: u.TokensOutput, TokensCachedInput: u.TokensCachedInput,
		TokensCacheWrite5m: u.TokensCacheWrite5m, TokensCacheWrite1h: u.TokensCacheWrite1h, TokensReasoning: u.TokensReasoning,
		RequestCount: u.Requests, SearchCount: u.Searches, ImageCount: u.Images, PageCount: u.Pages,
		StatusCode: o.StatusCode, ResponseTime: o.ResponseTime.Seconds(), Timestamp: ts.UTC().Format(time.RFC3339Nano)}
	c.mu.RLock()
	defer c.mu.RUnlock()
	select {
	case <-c.stop:
		return errClosed
	default:
	}
	select {
	case c.queue <- pending{event: ev}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("settlement buffer full: %w", ctx.Err())
	case <-c.stop:
		return errClosed
	}
}

var errClosed = errors.New("tracking client closed")

// Close sends what is queued (until ctx ends) and stops the client. When
// ctx ends first, the settlements not yet sent are given up (and reported
// to OnError) and ctx's error is returned; either way no goroutine of the
// client is left running.
func (c *Client) Close(ctx context.Context) error {
	c.once.Do(func() { close(c.stop) })
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.abort()
		<-c.done // prompt: the request in flight is cancelled, retries end
		return ctx.Err()
	}
}

func (c *Client) run() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.FlushEvery)
	defer t.Stop()
	var batch []eventBody
	flush := func() {
		if len(batch) > 0 {
			c.send(batch)
			batch = nil
		}
	}
	for {
		select {
		case p := <-c.queue:
			batch = append(batch, p.event)
			if len(batch) >= c.cfg.BatchSize {
				flush()
			}
		case <-t.C:
			flush()
		case <-c.stop:
			// Wait for the Settle calls in flight; later ones see stop.
			c.mu.Lock()
			c.mu.Unlock()
			for {
				select {
				case p := <-c.queue:
					batch = append(batch, p.event)
					if len(batch) >= c.cfg.BatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

// splitAfter is how many 5xx answers in a row a batch of several events
// gets before it is split. A server that fails on one event (a poison
// event) fails every batch that carries it; split, the other events go
// through and only the poison one is retried until given up. A few tries
// first ride out a brief outage without multiplying requests.
const splitAfter = 3

// send posts one batch, retrying server and network failures with the
// same event ids until RetryFor has passed or Close gives up.
func (c *Client) send(batch []eventBody) {
	c.sendBy(batch, time.Now().Add(c.cfg.RetryFor))
}

// sendBy sends batch, retrying until deadline. The server refuses a whole
// batch for one bad event and stores none of it, so a refused batch is
// split and its halves sent on their own: only the bad events are lost,
// not the good ones that shared their batch. A batch failing with 5xx
// splitAfter times in a row is split too. The halves share the deadline of
// the batch they came from, so a batch is never retried for longer than
// RetryFor in all, and each is tried at least once.
func (c *Client) sendBy(batch []eventBody, deadline time.Time) {
	body, _ := json.Marshal(map[string]any{"events": batch})
	wait := 100 * time.Millisecond
	serverErrors := 0
	for {
		if c.aborted.Err() != nil {
			c.report(fmt.Errorf("%s given up: the client was closed before it could be sent", describe(batch)))
			return
		}
		ctx, cancel := context.WithTimeout(c.aborted, 30*time.Second)
		status, resp, err := c.post(ctx, "/api/subscription/usage", body)
		cancel()
		switch {
		case err == nil && status < 300:
			return
		case err == nil && status < 500 && status != http.StatusTooManyRequests:
			if len(batch) > 1 && status != http.StatusUnauthorized && status != http.StatusForbidden {
				c.split(batch, deadline)
				return
			}
			c.report(fmt.Errorf("%s refused (%d): %.300s", describe(batch), status, resp))
			return
		case err == nil && status >= 500:
			serverErrors++
			if len(batch) > 1 && serverErrors >= splitAfter {
				c.split(batch, deadline)
				return
			}
		default:
			serverErrors = 0
		}
		if time.Now().Add(wait).After(deadline) {
			c.report(fmt.Errorf("%s given up after retrying: status %d, %v", describe(batch), status, err))
			return
		}
		// Retrying continues through shutdown until the deadline; Close's
		// context bounds how long, by aborting.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.aborted.Done():
			t.Stop()
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// split sends the halves of batch on their own, by deadline.
func (c *Client) split(batch []eventBody, deadline time.Time) {
	half := len(batch) / 2
	c.sendBy(batch[:half], deadline)
	c.sendBy(batch[half:], deadline)
}

// describe names a batch in a report: its size and, for a small one, its
// event ids, so that an event given up can be found.
func describe(batch []eventBody) string {
	const maxIDs = 5
	ids := make([]string, 0, maxIDs)
	for _, e := range batch[:min(len(batch), maxIDs)] {
		ids = append(ids, e.EventID)
	}
	more := ""
	if len(batch) > maxIDs {
		more = fmt.Sprintf(" and %d more", len(batch)-maxIDs)
	}
	return fmt.Sprintf("usage batch of %d (events %s%s)", len(batch), strings.Join(ids, ", "), more)
}

func (c *Client) report(err error) {
	if c.cfg.OnError != nil {
		c.cfg.OnError(err)
	}
}

func (c *Client) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}
