-- 003_sku_stock: the latest stock and price of every SKU.
--
-- Filled from catalogue events of type 'sku.updated' (sku, quantity = stock
-- now, amount = unit price in fen), which wxpayd does not emit yet: until it
-- does this table stays empty and sold_vs_stock shows stock 0. The row with
-- the latest ts_ms wins.
CREATE TABLE IF NOT EXISTS {db}.sku_stock
(
    sku      String,
    stock    Int64,
    price    Int64,
    ts_ms    Int64,
    updated  DateTime
)
ENGINE = ReplacingMergeTree(ts_ms)
ORDER BY sku;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sku_stock_mv TO {db}.sku_stock AS
SELECT
    sku,
    quantity AS stock,
    amount AS price,
    ts_ms,
    ts AS updated
FROM {db}.events
WHERE type = 'sku.updated' AND sku != '';
