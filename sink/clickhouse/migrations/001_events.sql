-- 001_events: the event log, one row per event.
--
-- ReplacingMergeTree keyed on event_id: a redelivered event (at-least-once
-- Kafka delivery) has the same event_id and the same partition (its ts), so
-- background merges keep one row. Until they do, read with FINAL, or count
-- with uniqExact(event_id): both give exact answers at any moment.
-- ts_ms keeps the millisecond (no DateTime64 on ClickHouse 18.16); ts is the
-- same instant to the second, for partitioning and time functions.
CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id          String,
    type              String,
    out_trade_no      String,
    seq               UInt64,
    ts_ms             Int64,
    ts                DateTime,
    state             String,
    sku               String,
    quantity          Int64,
    openid            String,
    amount            Int64,
    refund_amount     Int64,
    refunded_total    Int64,
    transaction_id    String,
    out_refund_no     String,
    notification_id   String,
    prepay_latency_us Int64,
    prepay_to_paid_ms Int64,
    reason            String,
    alert             String,
    v                 UInt8,
    ingested_at       DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY event_id;
