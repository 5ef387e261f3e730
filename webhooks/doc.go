// Package webhooks is for programs that receive alwrity-billing's webhooks:
// it verifies the signature of a delivery and decodes its event.
//
// Every delivery is an HTTP POST whose body is one JSON event,
//
//	{"id": "evt_…", "type": "alert.created", "created_at": "2026-11-29T17:41:42.123456Z", "data": {…}}
//
// with these headers:
//
//	Alwrity-Event-Id:  evt_…                       (the same as the body's id)
//	Alwrity-Signature: t=1764438102,v1=5257a869…    (HMAC-SHA256, hex)
//
// v1 is the hex HMAC-SHA256, keyed with the endpoint's secret (the whole
// "whsec_…" text), of the timestamp t in decimal, a full stop and the raw
// body bytes. While a rotated secret is in its grace period the header
// carries one v1 per secret; a delivery is genuine when any of them
// matches. To verify, compute the HMAC over the body exactly as received
// (before any JSON decoding), compare it in constant time, and refuse a
// timestamp far from your clock (Verify takes the tolerance; five minutes
// is usual) so that a captured delivery cannot be replayed later.
//
// Deliveries are retried until the receiver answers 2xx, so the same event
// may arrive more than once: de-duplicate by the event id. Events are not
// guaranteed to arrive in order.
package webhooks
