// Package relay publishes the durable outbox of wxpayd's store to Kafka.
//
// The Relay reads outbox entries in sequence order (Store.ReadOutbox only
// hands out entries below the lowest commit still in flight, so a cursor
// never skips one), publishes them keyed by out_trade_no with acks=all,
// and deletes them (Store.AckOutbox) only after the broker confirmed every
// message of the batch. A failed publish is retried, with capped and
// jittered exponential back-off, until it succeeds: Kafka being down
// delays events, never loses or reorders them per key, and never blocks
// payments (they only write to the store). Delivery is at-least-once; the sink
// deduplicates on event_id.
//
// Metrics (on Config.Registerer): wxpayd_outbox_backlog,
// wxpayd_outbox_oldest_unsent_age_seconds, wxpayd_relay_published_total,
// wxpayd_relay_errors_total, wxpayd_relay_publish_seconds.
package relay
