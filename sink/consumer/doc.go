// Package consumer reads order events from Kafka as a consumer group and
// writes them to a Sink in batches, committing offsets only after the Sink
// accepted the batch.
//
// Batches close at Config.BatchSize events or Config.FlushInterval after
// their first message, whichever comes first. One batch is written while the
// next fills, and at most one more waits: memory is bounded and, when the
// Sink is down, fetching stops and the backlog waits in Kafka. A failed
// Write is retried with capped, jittered exponential back-off until it
// succeeds or the consumer stops; offsets are never committed past an
// unwritten event.
//
// A message that does not decode (bad JSON, missing required fields, an
// unknown newer schema version) is published to the dead-letter topic with
// the reason in the "wxpayd-dlq-reason" header, before its batch commits, so
// it never blocks its partition and never disappears.
//
// Delivery is at-least-once: after a crash or a rebalance the uncommitted
// tail is read again. Sinks make that exactly-once in effect by
// deduplicating on event_id (ClickHouse: ReplacingMergeTree).
package consumer
