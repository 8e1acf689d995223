-- 005_shop_checkout: the two fields of orders a shop creates through the
-- checkout API (POST /api/v1/checkouts): its own order id and the attach it
-- sent to WeChat Pay. Both are optional event fields of version 1 (see
-- docs/events.md); rows written before this step, and events of other
-- orders, read them as ''.
--
-- ADD COLUMN only changes the table's structure: existing parts are not
-- rewritten, and the missing column reads as its default. The columns go at
-- the end of the table (after ingested_at); every insert names its columns.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: one column per
-- statement, and Migrate counts "already exists" as done (migrate.go).
-- The orders table and its view keep their columns: read the two fields
-- from events (any row of the order: they never change within one).
ALTER TABLE {db}.events ADD COLUMN shop_order_id String;
ALTER TABLE {db}.events ADD COLUMN attach String;
