// Package defaults is the one place for what the sink's packages share:
// the event topic's contract, the batch size and flush interval the
// consumer and the ClickHouse writer agree on, and the retry back-off with
// its bounds. relay, consumer, clickhouse, embedded and sink itself take
// their values from here, so they cannot drift apart; each package still
// exports its own Default* names for its callers.
package defaults

import "time"

// The event topic's contract, shared by the relay (writer), the consumer
// (reader) and the embedded broker.
const (
	// Topic is the default order-event topic.
	Topic = "wxpayd.order-events"
	// Partitions is the partition count of the topic when wxpayd creates it.
	Partitions = 6
	// ReplicationFactor is its replication factor when wxpayd creates it.
	ReplicationFactor = 1
)

// Batching from Kafka into ClickHouse, shared by the consumer and the
// ClickHouse writer (sink.Run hands the writer's values to the consumer).
const (
	// BatchSize is the most events in one batch and one INSERT.
	BatchSize = 50000
	// FlushInterval is the longest a partial batch waits.
	FlushInterval = time.Second
)

// Retry back-off, shared by every retry loop of the sink: Backoff's zero
// value and the RetryBackoff/MaxRetryBackoff fields of the relay's and the
// consumer's Config.
const (
	// RetryBackoff is the first delay of a retry.
	RetryBackoff = 100 * time.Millisecond
	// MaxRetryBackoff caps the delay between retries.
	MaxRetryBackoff = 5 * time.Second
)
