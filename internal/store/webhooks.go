package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/webhook"
	"github.com/alwrity/alwrity-billing/webhooks"
)

// EnqueueEvent writes a webhook event of type typ to the outbox in the
// caller's transaction tx, with one pending delivery per active endpoint
// subscribed to typ, due at now. The event is delivered only if tx
// commits, and then surely (the delivery worker retries for a day), so
// call it from the transaction that makes the change the event reports.
//
// typ is one of webhooks.EventTypes() (webhooks.EventSubscriptionChanged,
// webhooks.EventInvoiceIssued, …); any other is an error. payload becomes
// the event's "data": any value encoding/json encodes to a JSON object,
// written once and sent unchanged on every attempt. Write times as
// RFC 3339 UTC and money as money.Amount (exact decimal). When no active
// endpoint subscribes to typ nothing is written.
func EnqueueEvent(ctx context.Context, tx *sql.Tx, typ string, payload any, now time.Time) error {
	if !webhook.IsEventType(typ) {
		return fmt.Errorf("enqueue webhook event: unknown event type %q", typ)
	}
	_, err := enqueueEvent(ctx, tx, typ, payload, 0, now)
	return err
}

// EnqueueWebhookEvent is EnqueueEvent in a transaction of its own, for a
// change that is already committed (or has no transaction).
func (db *DB) EnqueueWebhookEvent(ctx context.Context, typ string, payload any, now time.Time) error {
	return db.inTx(ctx, func(tx *sql.Tx) error { return EnqueueEvent(ctx, tx, typ, payload, now) })
}

// enqueueEvent writes the event and its deliveries: to the active
// endpoints subscribed to typ, or, when only is not 0, to that endpoint
// alone whatever it subscribes to. It returns the event id, or "" when no
// endpoint receives the event and nothing was written.
func enqueueEvent(ctx context.Context, tx *sql.Tx, typ string, payload any, only int64, now time.Time) (string, error) {
	targets, err := subscribers(ctx, tx, typ, only)
	if err != nil || len(targets) == 0 {
		return "", err
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("encode %s webhook payload: %w", typ, err)
	}
	id := webhook.NewEventID()
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (event_id, type, payload, created_at) VALUES ($1, $2, $3, $4)`,
		id, typ, string(data), ts(now)); err != nil {
		return "", fmt.Errorf("insert webhook event: %w", err)
	}
	for _, ep := range targets {
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts,
			next_attempt_at, created_at) VALUES ($1, $2, 'pending', 0, $3, $3)`, id, ep, ts(now)); err != nil {
			return "", fmt.Errorf("insert webhook delivery: %w", err)
		}
	}
	return id, nil
}

// subscribers returns the ids of the active endpoints that receive typ.
// Endpoints are few, so their subscriptions are matched here rather than
// in SQL.
func subscribers(ctx context.Context, tx *sql.Tx, typ string, only int64) ([]int64, error) {
	q, args := `SELECT id, events FROM webhook_endpoints WHERE active = TRUE ORDER BY id`, []any{}
	if only != 0 {
		q, args = `SELECT id, events FROM webhook_endpoints WHERE active = TRUE AND id = $1`, []any{only}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read webhook endpoints: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		var events string
		if err := rows.Scan(&id, &events); err != nil {
			return nil, err
		}
		var types []string
		if err := json.Unmarshal([]byte(events), &types); err != nil {
			return nil, fmt.Errorf("webhook endpoint %d: stored events: %w", id, err)
		}
		if only != 0 || slices.Contains(types, typ) {
			out = append(out, id)
		}
	}
	return out, rows.Err()
}

// alertCreated enqueues the webhook events of an alert just inserted in
// tx: alert.created, and usage.limit_reached too when the alert says a
// limit was reached (calls, tokens or the monthly cost).
func alertCreated(ctx context.Context, tx *sql.Tx, a billing.Alert, now time.Time) error {
	types := []string{webhooks.EventAlertCreated}
	if a.Type == billing.AlertLimitReached || a.Type == billing.AlertCostOverrun {
		types = append(types, webhooks.EventUsageLimitReached)
	}
	var data *webhooks.Alert
	for _, typ := range types {
		targets, err := subscribers(ctx, tx, typ, 0)
		if err != nil {
			return err
		}
		if len(targets) == 0 {
			continue
		}
		if data == nil {
			// The insert does not return the id (ON CONFLICT DO NOTHING
			// inserts nothing on a repeat); the unique key finds it.
			data = &webhooks.Alert{UserID: a.UserID, Type: a.Type, LimitKey: a.LimitKey, ThresholdPercentage: a.ThresholdPercentage,
				Title: a.Title, Message: a.Message, Severity: a.Severity, BillingPeriod: a.BillingPeriod, CreatedAt: now.UTC()}
			if a.Provider != "" {
				data.Provider = &a.Provider
			}
			if err := tx.QueryRowContext(ctx, `SELECT id FROM usage_alerts WHERE dedupe_key = $1`, a.DedupeKey()).Scan(&data.AlertID); err != nil {
				return fmt.Errorf("read new alert's id: %w", err)
			}
		}
		if _, err := enqueueEvent(ctx, tx, typ, data, 0, now); err != nil {
			return err
		}
	}
	return nil
}

// claimWebhooksSQL takes the due deliveries in a materialized CTE, which
// runs once: an "IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)" subquery may
// be run again for each row PostgreSQL updates and so claim more than n
// rows. %s is the dialect's row lock.
const claimWebhooksSQL = `WITH due AS MATERIALIZED (
		SELECT d.id FROM webhook_deliveries d
		WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until <= $1)
		  AND EXISTS (SELECT 1 FROM webhook_endpoints p WHERE p.id = d.endpoint_id AND p.active = TRUE)
		ORDER BY d.next_attempt_at, d.id LIMIT $4 %s)
	UPDATE webhook_deliveries SET lease_until = $2, lease_token = $3, attempts = attempts + 1
	WHERE id IN (SELECT id FROM due) AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $1)
	RETURNING id, attempts`

// ClaimWebhookDeliveries leases up to limit due pending deliveries until
// leaseUntil and counts an attempt for each. It is one statement: on
// PostgreSQL the candidates are locked with FOR UPDATE SKIP LOCKED, so
// concurrent claims (from any number of processes) take disjoint rows
// without waiting; on SQLite the single writer runs each claim whole. A
// delivery whose lease ran out (its worker died) is due again.
func (db *DB) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]webhook.Job, error) {
	lock := ""
	if db.dialect == Postgres {
		lock = "FOR UPDATE OF d SKIP LOCKED"
	}
	token := webhook.NewToken()
	rows, err := db.write.QueryContext(ctx, fmt.Sprintf(claimWebhooksSQL, lock), ts(now), ts(leaseUntil), token, limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	attempts := map[int64]int{}
	var ids []any
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, err
		}
		attempts[id] = n
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err = db.readRows(ctx, `SELECT d.id, e.event_id, e.type, e.payload, e.created_at, p.id, p.url, p.secret,
		p.previous_secret, p.previous_secret_until
		FROM webhook_deliveries d JOIN webhook_events e ON e.event_id = d.event_id JOIN webhook_endpoints p ON p.id = d.endpoint_id
		WHERE d.id IN (`+placeholders(1, len(ids))+`) ORDER BY d.next_attempt_at, d.id`, ids...)
	if err != nil {
		return nil, fmt.Errorf("read claimed webhook deliveries: %w", err)
	}
	defer rows.Close()
	jobs := make([]webhook.Job, 0, len(ids))
	for rows.Next() {
		j := webhook.Job{Token: token}
		var payload, secret string
		var previous sql.NullString
		var previousUntil *time.Time
		if err := rows.Scan(&j.DeliveryID, &j.EventID, &j.EventType, &payload, scanTime{&j.EventCreatedAt}, &j.EndpointID,
			&j.URL, &secret, &previous, scanNullTime{&previousUntil}); err != nil {
			return nil, err
		}
		j.Attempt = attempts[j.DeliveryID]
		j.Data = json.RawMessage(payload)
		j.Secrets = []string{secret}
		if previous.Valid && previousUntil != nil && now.Before(*previousUntil) {
			j.Secrets = append(j.Secrets, previous.String)
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// FinishWebhookAttempt records an attempt and the delivery's new state
// (delivered, due again at r.NextAttemptAt, or failed) and ends the lease,
// in one transaction. The state changes only while r.Token still holds
// the lease; otherwise the attempt is recorded and webhook.ErrLeaseLost
// returned.
func (db *DB) FinishWebhookAttempt(ctx context.Context, r webhook.Result) error {
	lost := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var status any
		if r.Attempt.StatusCode != 0 {
			status = r.Attempt.StatusCode
		}
		var errText any
		if r.Attempt.Error != "" {
			errText = r.Attempt.Error
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, error,
			duration_ms) VALUES ($1, $2, $3, $4, $5, $6)`, r.DeliveryID, r.Attempt.Number, ts(r.Attempt.AttemptedAt), status,
			errText, r.Attempt.Duration.Milliseconds())
		if isUniqueViolation(err) {
			// Another claim of the delivery recorded this attempt number.
			return webhook.ErrLeaseLost
		}
		if err != nil {
			return fmt.Errorf("insert webhook attempt: %w", err)
		}
		state, next := webhook.StatusFailed, any(nil)
		var delivered any
		switch {
		case r.Delivered:
			state, delivered = webhook.StatusDelivered, ts(r.Attempt.AttemptedAt)
		case r.NextAttemptAt != nil:
			state, next = webhook.StatusPending, ts(*r.NextAttemptAt)
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = $3,
			next_attempt_at = COALESCE($4, next_attempt_at), lease_until = NULL, lease_token = NULL,
			last_status = $5, last_error = $6, delivered_at = $7 WHERE id = $1 AND lease_token = $2`,
			r.DeliveryID, r.Token, state, next, status, errText, delivered)
		if err != nil {
			return fmt.Errorf("update webhook delivery: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			lost = true
		}
		return nil
	})
	if err == nil && lost {
		return webhook.ErrLeaseLost
	}
	if errors.Is(err, webhook.ErrLeaseLost) {
		return webhook.ErrLeaseLost
	}
	return err
}

const endpointColumns = `id, url, events, description, active, created_at, deactivated_at, secret_rotated_at`

func scanEndpoint(r rowScanner) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	var events string
	if err := r.Scan(&e.ID, &e.URL, &events, &e.Description, &e.Active, scanTime{&e.CreatedAt}, scanNullTime{&e.DeactivatedAt},
		scanNullTime{&e.SecretRotatedAt}); err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(events), &e.Events); err != nil {
		return e, fmt.Errorf("webhook endpoint %d: stored events: %w", e.ID, err)
	}
	return e, nil
}

// CreateWebhookEndpoint stores an active endpoint with e's URL, events,
// description and secret (validated by the caller) and returns it with
// its id.
func (db *DB) CreateWebhookEndpoint(ctx context.Context, e webhook.Endpoint, now time.Time) (webhook.Endpoint, error) {
	events, err := json.Marshal(e.Events)
	if err != nil {
		return e, err
	}
	if e.Secret == "" {
		return e, errors.New("create webhook endpoint: no secret")
	}
	err = db.write.QueryRowContext(ctx, `INSERT INTO webhook_endpoints (url, secret, events, description, active, created_at)
		VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id`, e.URL, e.Secret, string(events), e.Description, ts(now)).Scan(&e.ID)
	if err != nil {
		return e, fmt.Errorf("insert webhook endpoint: %w", err)
	}
	e.Active, e.CreatedAt, e.DeactivatedAt, e.SecretRotatedAt = true, now.UTC().Truncate(time.Microsecond), nil, nil
	return e, nil
}

// ListWebhookEndpoints returns every endpoint, active or not, oldest
// first, without secrets.
func (db *DB) ListWebhookEndpoints(ctx context.Context) ([]webhook.Endpoint, error) {
	rows, err := db.readRows(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []webhook.Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetWebhookEndpoint returns one endpoint without its secret. Errors:
// not_found.
func (db *DB) GetWebhookEndpoint(ctx context.Context, id int64) (webhook.Endpoint, error) {
	return getEndpoint(ctx, db.read, id)
}

func getEndpoint(ctx context.Context, q querier, id int64) (webhook.Endpoint, error) {
	e, err := scanEndpoint(q.QueryRowContext(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, billing.Errorf(billing.CodeNotFound, "webhook endpoint %d not found", id)
	}
	return e, err
}

// DeactivateWebhookEndpoint stops deliveries to an endpoint: it receives
// no new events, and its pending deliveries fail. Deactivating an inactive
// endpoint changes nothing. Errors: not_found.
func (db *DB) DeactivateWebhookEndpoint(ctx context.Context, id int64, now time.Time) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET active = FALSE, deactivated_at = $2 WHERE id = $1 AND active = TRUE`,
			id, ts(now))
		if err != nil {
			return fmt.Errorf("deactivate webhook endpoint: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deactivated',
				lease_until = NULL, lease_token = NULL WHERE endpoint_id = $1 AND status = 'pending'`, id); err != nil {
				return fmt.Errorf("cancel webhook deliveries: %w", err)
			}
		}
		e, err = getEndpoint(ctx, tx, id)
		return err
	})
	return e, err
}

// RotateWebhookSecret gives an active endpoint a new signing secret. The
// old one keeps signing beside it (a second v1 in the header) until
// now+grace, so a receiver can switch without refusing deliveries; a grace
// of 0 retires it at once. The returned endpoint carries the new secret.
// Errors: not_found, conflict for an inactive endpoint.
func (db *DB) RotateWebhookSecret(ctx context.Context, id int64, secret string, grace time.Duration, now time.Time) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $3,
			secret = $2, secret_rotated_at = $4 WHERE id = $1 AND active = TRUE`, id, secret, ts(now.Add(grace)), ts(now))
		if err != nil {
			return fmt.Errorf("rotate webhook secret: %w", err)
		}
		if e, err = getEndpoint(ctx, tx, id); err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return billing.Errorf(billing.CodeConflict, "webhook endpoint %d is deactivated", id)
		}
		e.Secret = secret
		return nil
	})
	return e, err
}

// SendWebhookPing enqueues a ping event to one active endpoint and returns
// its event id. Errors: not_found, conflict for an inactive endpoint.
func (db *DB) SendWebhookPing(ctx context.Context, id int64, now time.Time) (string, error) {
	var eventID string
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		e, err := getEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		if !e.Active {
			return billing.Errorf(billing.CodeConflict, "webhook endpoint %d is deactivated", id)
		}
		eventID, err = enqueueEvent(ctx, tx, webhooks.EventPing, map[string]any{
			"endpoint_id": id, "message": "A test event sent on an administrator's request."}, id, now)
		return err
	})
	return eventID, err
}

// ListWebhookDeliveries returns an endpoint's deliveries, newest first,
// each with its attempts, and how many match the filter in all. Errors:
// not_found for an unknown endpoint.
func (db *DB) ListWebhookDeliveries(ctx context.Context, f webhook.DeliveryFilter) ([]webhook.Delivery, int64, error) {
	if _, err := db.GetWebhookEndpoint(ctx, f.EndpointID); err != nil {
		return nil, 0, err
	}
	where, args := "d.endpoint_id = $1", []any{f.EndpointID}
	if f.Status != "" {
		where += " AND d.status = $2"
		args = append(args, f.Status)
	}
	var total int64
	if err := db.readRow(ctx, `SELECT COUNT(*) FROM webhook_deliveries d WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count webhook deliveries: %w", err)
	}
	n := len(args)
	rows, err := db.readRows(ctx, fmt.Sprintf(`SELECT d.id, d.event_id, e.type, e.created_at, d.endpoint_id, d.status,
		d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.delivered_at, d.created_at
		FROM webhook_deliveries d JOIN webhook_events e ON e.event_id = d.event_id
		WHERE %s ORDER BY d.id DESC LIMIT $%d OFFSET $%d`, where, n+1, n+2), append(args, f.Limit, f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list webhook deliveries: %w", err)
	}
	out := []webhook.Delivery{}
	index := map[int64]int{}
	var ids []any
	for rows.Next() {
		var d webhook.Delivery
		var last sql.NullInt64
		var lastErr sql.NullString
		if err := rows.Scan(&d.ID, &d.EventID, &d.EventType, scanTime{&d.EventCreatedAt}, &d.EndpointID, &d.Status, &d.Attempts,
			scanTime{&d.NextAttemptAt}, &last, &lastErr, scanNullTime{&d.DeliveredAt}, scanTime{&d.CreatedAt}); err != nil {
			rows.Close()
			return nil, 0, err
		}
		if last.Valid {
			s := int(last.Int64)
			d.LastStatus = &s
		}
		d.LastError = lastErr.String
		d.AttemptLog = []webhook.Attempt{}
		index[d.ID] = len(out)
		ids = append(ids, d.ID)
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if len(ids) == 0 {
		return out, total, nil
	}
	rows, err = db.readRows(ctx, `SELECT delivery_id, attempt, attempted_at, status_code, error, duration_ms
		FROM webhook_attempts WHERE delivery_id IN (`+placeholders(1, len(ids))+`) ORDER BY delivery_id, attempt`, ids...)
	if err != nil {
		return nil, 0, fmt.Errorf("list webhook attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, ms int64
		var a webhook.Attempt
		var status sql.NullInt64
		var errText sql.NullString
		if err := rows.Scan(&id, &a.Number, scanTime{&a.AttemptedAt}, &status, &errText, &ms); err != nil {
			return nil, 0, err
		}
		a.StatusCode, a.Error, a.Duration = int(status.Int64), errText.String, time.Duration(ms)*time.Millisecond
		d := &out[index[id]]
		d.AttemptLog = append(d.AttemptLog, a)
	}
	return out, total, rows.Err()
}

// PruneWebhooks deletes the deliveries that ended (delivered or failed)
// and were created before before, with their attempts, and the events no
// delivery refers to any more. It returns how many deliveries went.
func (db *DB) PruneWebhooks(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_attempts WHERE delivery_id IN
			(SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1)`, ts(before)); err != nil {
			return fmt.Errorf("prune webhook attempts: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1`, ts(before))
		if err != nil {
			return fmt.Errorf("prune webhook deliveries: %w", err)
		}
		n, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_events WHERE created_at < $1
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.event_id)`, ts(before)); err != nil {
			return fmt.Errorf("prune webhook events: %w", err)
		}
		return nil
	})
	return n, err
}
