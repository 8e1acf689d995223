// Package reconcile matches WeChat Pay's daily trade bill against wxpayd's
// orders and refunds, repairs what it can and raises the rest: the daily
// reconciliation (对账) of docs/architecture.md.
//
// A Reconciler runs one date at a time, in phases recorded in the date's
// run record (store key c/r/<date>), so that a crash at any moment resumes
// where it stopped and a rerun never doubles anything:
//
//  1. download: the ALL trade bill of the date is downloaded (gzip),
//     digest-checked and parsed as it streams (wxpay.TradeBillReader), and
//     each row is spilled to the store under c/b/<date>/, keyed by
//     out_trade_no, then kind and out_refund_no. Nothing is acted on before
//     the digest and the summary row have been checked at the end of the
//     file: a corrupt download is thrown away and fetched again.
//  2. match: the spilled rows and the day index of the date (d/<date>/,
//     the orders paid or with a refund requested that day, written with
//     each transition) are merged in out_trade_no order; each order is
//     loaded once and compared (match.go, a pure function). What differs
//     is a Discrepancy, kept under c/d/<date>/<key> and published as a
//     reconcile.discrepancy event in the same durable write, once per key
//     whatever the reruns (the event_id is derived from date and key). A
//     payment the bill lacks, or a refund, is first confirmed with a query
//     to WeChat (it may be on the next day's bill). The cursor (the last
//     out_trade_no matched) is saved every few thousand orders.
//  3. repair: every open payment_missing_here discrepancy is sent to its
//     order as an actors.Reconcile: the order actor queries WeChat now and
//     applies the payment it finds (order.paid, reason "reconcile", stock
//     committed once). The outcome is recorded (repaired or not).
//  4. complete: discrepancies of the date not seen again are resolved, the
//     counts and sums are written with a reconcile.completed event, and the
//     spill is deleted once the bill rows are loaded into ClickHouse (when
//     a Loader is configured; a load that fails is retried later and never
//     holds the reconciliation back).
//
// Some discrepancies never go away by themselves (a refund booked at
// WeChat outside wxpayd, an amount settled with WeChat's support): an admin
// resolves them by hand (Resolve), with a note, and publishes a
// reconcile.resolved event; later runs keep them resolved.
//
// Memory is bounded by the batch sizes, not by the bill: rows stream from
// the download into the store, and matching walks two sorted iterators.
//
// Ownership: the Reconciler owns every c/ key of the store; the order
// actors own the orders (a repair is a message to them, never a write).
// The Reconciler is safe for concurrent use: Run drives the daily job, and
// Request, Report and Resolve serve the admin API; one date is reconciled
// at a time, and a resolution waits for no run: it is refused while its
// date's run is pending or running.
package reconcile
