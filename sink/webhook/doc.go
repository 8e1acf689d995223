// Package webhook delivers order events to the shop's own backend: signed
// HTTP POSTs from a durable queue, at least once, in order per order.
//
// The queue is the store's (actors/store, webhook.go): when an event's
// type is subscribed (Subscription.Match, given to store.Options.Webhook),
// the order actor's transition adds a small entry to its own batch, so an
// event is queued exactly when it is committed, and a crash can lose
// neither. The Kafka outbox is separate: the relay deletes what Kafka
// confirmed, whatever the shop's endpoint does.
//
// A Deliverer reads the queue in pages (at most MaxBuffered entries in
// memory), keeps each order's entries first in, first out, and posts the
// head of each order's lane on one of Concurrency workers. An entry leaves
// the queue when the endpoint answers 2xx; otherwise it is tried again
// after a capped exponential back-off with jitter (Delay), its schedule
// written to the store so a restart continues it, and the first failure
// RetryFor (24 h) or more after its first attempt parks it in the dead
// letters (the admin API lists and redelivers them). An order's later
// event is never sent before its earlier one was delivered or parked.
//
// Each request carries the event's JSON exactly as docs/events.md defines
// it (the bytes the Kafka topic carries) and a signature header:
//
//	Wxpayd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// Verify is the receiver's check (signature.go uses nothing outside the
// standard library, for shops to copy). docs/webhooks.md is the shop's
// guide.
//
// Metrics (on Config.Registerer): wxpayd_webhook_delivered_total,
// wxpayd_webhook_failed_attempts_total{reason}, wxpayd_webhook_parked_total,
// wxpayd_webhook_redelivered_total, wxpayd_webhook_queue_depth,
// wxpayd_webhook_dead, wxpayd_webhook_inflight,
// wxpayd_webhook_delivery_seconds.
package webhook
