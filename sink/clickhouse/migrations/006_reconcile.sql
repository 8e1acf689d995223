-- 006_reconcile: WeChat's daily trade bills and what reconciling them found.
--
-- wxpayd's reconciliation (actors/reconcile) loads every row of a day's ALL
-- trade bill into bill_trades and the day's discrepancies into
-- reconcile_discrepancies, through BillLoader, when ClickHouse is
-- configured. Reloading a day (a rerun, a retried load) inserts the same
-- rows again: ReplacingMergeTree keyed by the day and the row's numbers
-- keeps one, the latest loaded; read with FINAL. Both are partitioned by
-- month of the bill's day, so a row and its reload share a partition.
-- bill_date is the bill's day in Beijing time; trade_time the row's 交易时间
-- (to the second, shown in the server's time zone). Amounts are fen, the
-- fee thousandths of a fen (WeChat writes five decimals of a yuan).
CREATE TABLE IF NOT EXISTS {db}.bill_trades
(
    bill_date              Date,
    out_trade_no           String,
    out_refund_no          String,
    trade_time             DateTime,
    appid                  String,
    mchid                  String,
    sub_mchid              String,
    transaction_id         String,
    openid                 String,
    trade_type             String,
    trade_state            String,
    bank_type              String,
    currency               String,
    settlement_total       Int64,
    coupon                 Int64,
    total                  Int64,
    refund_id              String,
    refund                 Int64,
    refund_requested       Int64,
    recharge_coupon_refund Int64,
    refund_type            String,
    refund_status          String,
    fee_milli_fen          Int64,
    rate_ppm               Int64,
    loaded_ms              Int64
)
ENGINE = ReplacingMergeTree(loaded_ms)
PARTITION BY toYYYYMM(bill_date)
ORDER BY (bill_date, out_trade_no, out_refund_no, transaction_id);

-- One row per discrepancy of a day (dkey: class:out_trade_no[:out_refund_no]),
-- as it stood when loaded: status open, repaired or resolved. The latest
-- load (updated_ms) wins.
CREATE TABLE IF NOT EXISTS {db}.reconcile_discrepancies
(
    bill_date     Date,
    dkey          String,
    class         String,
    status        String,
    out_trade_no  String,
    out_refund_no String,
    transaction_id String,
    our_state     String,
    our_amount    Int64,
    wechat_state  String,
    wechat_amount Int64,
    detail        String,
    repair        String,
    found_ms      Int64,
    updated_ms    Int64
)
ENGINE = ReplacingMergeTree(updated_ms)
PARTITION BY toYYYYMM(bill_date)
ORDER BY (bill_date, dkey);

-- Discrepancies per day and class: how many were found, how many are still
-- open, repaired, resolved.
CREATE VIEW IF NOT EXISTS {db}.reconcile_discrepancies_per_day AS
SELECT
    bill_date,
    class,
    count() AS found,
    countIf(status = 'open') AS still_open,
    countIf(status = 'repaired') AS repaired,
    countIf(status = 'resolved') AS resolved
FROM {db}.reconcile_discrepancies FINAL
GROUP BY bill_date, class;

-- Every payment of the bills next to the order wxpayd has for it (state and
-- amount from orders; '' and 0 when wxpayd has no such order), with the fee
-- and the settlement amount WeChat recorded for it.
CREATE VIEW IF NOT EXISTS {db}.bill_payments_vs_orders AS
SELECT
    bill_date,
    out_trade_no,
    transaction_id,
    trade_time,
    total AS wechat_amount,
    settlement_total,
    fee_milli_fen,
    order_state AS wxpayd_state,
    order_amount AS wxpayd_amount
FROM
(
    SELECT bill_date, out_trade_no, transaction_id, trade_time, total, settlement_total, fee_milli_fen
    FROM {db}.bill_trades FINAL
    WHERE trade_state = 'SUCCESS'
) AS bill_payments
ANY LEFT JOIN
(
    SELECT out_trade_no, state AS order_state, amount AS order_amount
    FROM {db}.orders FINAL
) AS wxpayd_orders USING out_trade_no;

-- The daily settlement, wxpayd and WeChat side by side, by Beijing day:
-- payments (orders paid that day) and their fen, refunds requested that day
-- and their fen; WeChat's fees and settlement (应结订单金额 less refunds).
-- wxpayd's side comes from the events (an order paid late by a
-- reconciliation counts on the day it was repaired), WeChat's from the bills.
CREATE VIEW IF NOT EXISTS {db}.daily_settlement AS
SELECT
    bill_date,
    sum(w_payments) AS wxpayd_payments,
    sum(x_payments) AS wechat_payments,
    sum(w_payment_fen) AS wxpayd_payment_fen,
    sum(x_payment_fen) AS wechat_payment_fen,
    sum(w_refunds) AS wxpayd_refunds,
    sum(x_refunds) AS wechat_refunds,
    sum(w_refund_fen) AS wxpayd_refund_fen,
    sum(x_refund_fen) AS wechat_refund_fen,
    sum(x_fee_milli_fen) AS wechat_fee_milli_fen,
    sum(x_settlement_fen) AS wechat_settlement_fen
FROM
(
    SELECT
        toDate(intDiv(ts_ms + 28800000, 86400000)) AS bill_date,
        countIf(type = 'order.paid') AS w_payments,
        sumIf(amount, type = 'order.paid') AS w_payment_fen,
        countIf(type = 'order.refund_requested') AS w_refunds,
        sumIf(refund_amount, type = 'order.refund_requested') AS w_refund_fen,
        toUInt64(0) AS x_payments,
        toInt64(0) AS x_payment_fen,
        toUInt64(0) AS x_refunds,
        toInt64(0) AS x_refund_fen,
        toInt64(0) AS x_fee_milli_fen,
        toInt64(0) AS x_settlement_fen
    FROM {db}.events FINAL
    WHERE type IN ('order.paid', 'order.refund_requested')
    GROUP BY bill_date
    UNION ALL
    SELECT
        bill_date,
        toUInt64(0),
        toInt64(0),
        toUInt64(0),
        toInt64(0),
        countIf(trade_state = 'SUCCESS'),
        sumIf(total, trade_state = 'SUCCESS'),
        countIf(trade_state = 'REFUND'),
        sumIf(refund, trade_state = 'REFUND'),
        sum(fee_milli_fen),
        sum(settlement_total) - sum(refund)
    FROM {db}.bill_trades FINAL
    GROUP BY bill_date
)
GROUP BY bill_date;
