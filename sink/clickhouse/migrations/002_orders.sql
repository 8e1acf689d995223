-- 002_orders: the latest state of every order.
--
-- Every order event carries the order's whole state after the transition
-- (state, sku, quantity, openid, amount, transaction_id, refunded_total), so
-- the row with the highest seq is the order now. The materialized view
-- copies each inserted event here; ReplacingMergeTree(seq) keeps the highest
-- seq per out_trade_no (a redelivered event is the same row again). No
-- PARTITION BY: an order's events span months, and replacing only works
-- within one partition. Read with FINAL (or argMax(col, seq) GROUP BY
-- out_trade_no).
CREATE TABLE IF NOT EXISTS {db}.orders
(
    out_trade_no   String,
    seq            UInt64,
    state          String,
    last_event     String,
    sku            String,
    quantity       Int64,
    openid         String,
    amount         Int64,
    refunded_total Int64,
    transaction_id String,
    updated_ms     Int64,
    updated        DateTime
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY out_trade_no;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.orders_mv TO {db}.orders AS
SELECT
    out_trade_no,
    seq,
    state,
    type AS last_event,
    sku,
    quantity,
    openid,
    amount,
    refunded_total,
    transaction_id,
    ts_ms AS updated_ms,
    ts AS updated
FROM {db}.events
WHERE out_trade_no != '' AND state != '';
