// Package clickhouse writes order events into ClickHouse and owns the
// ClickHouse schema.
//
// The schema lives in migrations/NNN_name.sql, embedded in the binary and
// applied in order by Migrate; each applied migration is recorded in the
// schema_migrations table of the database, so a restart applies only the new
// ones. The SQL works on ClickHouse 18.16 (Debian's package, used on the
// development machines) and on current ClickHouse: PARTITION BY / ORDER BY
// syntax, DateTime plus epoch milliseconds instead of DateTime64, no TTL,
// CODEC or LowCardinality. "{db}" in a migration is replaced by the
// database name.
//
// Deduplication: events is a ReplacingMergeTree keyed on event_id, so the
// at-least-once delivery of Kafka becomes exactly-once in effect. Exact
// counts come from FINAL or uniqExact(event_id) (see docs/analytics.md).
//
// Writer talks the native protocol only (clickhouse-go v2; the HTTP
// interface of 18.16 refuses the driver's settings) and inserts through
// PrepareBatch with an explicit column list.
package clickhouse
