// Package sink moves wxpayd's order events from the durable outbox to
// ClickHouse, through Kafka:
//
//	store outbox ──relay──▶ Kafka "wxpayd.order-events" ──consumer──▶ ClickHouse (events, orders, views)
//
// Subpackages: relay (outbox → Kafka, inside wxpayd), consumer (Kafka →
// a Sink, with a dead-letter topic), clickhouse (the ClickHouse Sink and
// the schema migrations), memory (an in-memory Sink), sinktest (the
// contract every Sink passes), embedded (an in-process broker for when no
// Kafka is configured), itest (the gate and helpers of the module's
// integration tests), webhook (the store's webhook queue → the shop's
// endpoint, signed; beside the pipeline, not part of it). The defaults
// the subpackages share, and their retry back-off, live in one internal
// package, internal/defaults.
//
// Run is the whole Kafka → ClickHouse sink in one call: cmd/wxpaysink
// runs it as its own process, and wxpayd runs it in-process when
// WXPAYD_CLICKHOUSE_ADDR is set:
//
//	cfg, err := sink.ConfigFromEnv() // WXPAYD_KAFKA_BROKERS, WXPAYD_CLICKHOUSE_ADDR, ...
//	cfg.Brokers = brokers            // e.g. the embedded broker's addresses
//	go sink.Run(ctx, cfg)            // returns when ctx ends, after flushing
package sink
