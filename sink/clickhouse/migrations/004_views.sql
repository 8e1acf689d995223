-- 004_views: ready aggregates for analysts.
--
-- These are plain views over events FINAL, so every number is exact even
-- before background merges have removed redelivered duplicates. (A
-- materialized aggregate would count a redelivered event twice: it sees
-- each inserted block, before deduplication.) Each view is small to scan
-- at this shop's volumes; filter by its time column.

-- Gross merchandise value per minute: paid orders, paid fen, refunded fen.
CREATE VIEW IF NOT EXISTS {db}.gmv_per_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    countIf(type = 'order.paid') AS paid_orders,
    sumIf(amount, type = 'order.paid') AS gmv_fen,
    sumIf(refund_amount, type = 'order.refunded') AS refunded_fen
FROM {db}.events FINAL
WHERE type IN ('order.paid', 'order.refunded')
GROUP BY minute;

-- The funnel created -> prepaid -> paid -> refunded, by the minute the
-- orders were created (a cohort: each order counts once per stage it reached).
CREATE VIEW IF NOT EXISTS {db}.funnel_per_minute AS
SELECT
    toStartOfMinute(created_at) AS minute,
    count() AS created,
    sum(reached_prepaid) AS prepaid,
    sum(reached_paid) AS paid,
    sum(reached_refunded) AS refunded
FROM
(
    SELECT
        out_trade_no,
        minIf(ts, type = 'order.created') AS created_at,
        max(type = 'order.prepaid') AS reached_prepaid,
        max(type = 'order.paid') AS reached_paid,
        max(type = 'order.refunded') AS reached_refunded
    FROM {db}.events FINAL
    WHERE type IN ('order.created', 'order.prepaid', 'order.paid', 'order.refunded')
    GROUP BY out_trade_no
    HAVING countIf(type = 'order.created') > 0
)
GROUP BY minute;

-- Prepay call latency (wxpayd -> WeChat Pay JSAPI prepay), microseconds.
CREATE VIEW IF NOT EXISTS {db}.prepay_latency_per_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    count() AS calls,
    countIf(type = 'order.prepay_failed') AS failed,
    quantilesExact(0.5, 0.9, 0.99)(prepay_latency_us) AS p50_p90_p99_us,
    max(prepay_latency_us) AS max_us
FROM {db}.events FINAL
WHERE type IN ('order.prepaid', 'order.prepay_failed')
GROUP BY minute;

-- Time from prepay to payment (the buyer's hesitation plus WeChat), ms.
CREATE VIEW IF NOT EXISTS {db}.pay_latency_per_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    count() AS paid_orders,
    quantilesExact(0.5, 0.9, 0.99)(prepay_to_paid_ms) AS p50_p90_p99_ms,
    max(prepay_to_paid_ms) AS max_ms
FROM {db}.events FINAL
WHERE type = 'order.paid' AND prepay_to_paid_ms > 0
GROUP BY minute;

-- Notifications that did not move an order: WeChat retries and replays
-- (duplicate), bad signature or timestamp (rejected), and ones that do not
-- match the order (mismatch: an alert, never a payment).
CREATE VIEW IF NOT EXISTS {db}.notify_counts_per_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    countIf(type = 'notify.duplicate') AS duplicate,
    countIf(type = 'notify.rejected') AS rejected,
    countIf(type = 'notify.mismatch') AS mismatch
FROM {db}.events FINAL
WHERE type IN ('notify.duplicate', 'notify.rejected', 'notify.mismatch')
GROUP BY minute;

-- Sold per SKU: paid orders, units and fen.
CREATE VIEW IF NOT EXISTS {db}.sku_sold AS
SELECT
    sku,
    count() AS paid_orders,
    sum(quantity) AS sold,
    sum(amount) AS gmv_fen
FROM {db}.events FINAL
WHERE type = 'order.paid'
GROUP BY sku;

-- Sold versus stock per SKU. stock and price come from sku.updated events
-- (see 003_sku_stock); 0 until wxpayd emits them.
CREATE VIEW IF NOT EXISTS {db}.sold_vs_stock AS
SELECT
    sku,
    sold,
    paid_orders,
    stock,
    price
FROM
(
    SELECT sku, sum(quantity) AS sold, count() AS paid_orders
    FROM {db}.events FINAL
    WHERE type = 'order.paid'
    GROUP BY sku
) AS sold_per_sku
ANY LEFT JOIN
(
    SELECT sku, stock, price
    FROM {db}.sku_stock FINAL
) AS latest_stock USING sku;
