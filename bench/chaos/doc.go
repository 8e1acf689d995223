// Package chaos is the chaos audit of wxpayd: money stays right when buyers
// race and WeChat fails.
//
// TestChaos builds the real wxpayd and wxpaysim binaries and runs them on
// loopback: wxpayd with its embedded Kafka broker, a fresh data directory
// and a short order TTL (1 minute; 2 in runs of 8 minutes or more, so that
// wxpayd's active query, a minute after prepay, comes before the close),
// wxpaysim with faults on every WeChat API (system errors, rate
// limits, unsigned 502s, slow answers, answers lost after the call took
// effect), refunds that end SUCCESS, CLOSED or ABNORMAL, and duplicated,
// stale and tampered notifications. A seeded workload plays honest buyers,
// buyers racing one Idempotency-Key with different bodies, buyers racing
// several keys against per-buyer limits, late and abandoned payments and an
// admin refunding (partly, fully, concurrently, repeatedly), while wxpayd
// is SIGKILLed and restarted at planned moments. A fifth of the buyers buy
// through a shop instead of the catalogue: the shop's backend sends its
// checkout (POST /api/v1/checkouts with the shop token, some with line
// items of catalogue SKUs or an expires_in) two to four times at once for
// one shop_order_id, as its retries do, some copies with another amount,
// attach or buyer and the buyer given as an openid or a session token;
// the buyer pays the order it got as the others do, the admin refunds
// some, and some shops send the checkout once more later, with the same
// or other fields. Then the faults stop, the run waits until every timer
// has settled, wxpayd is killed and started once more, and the audit
// compares wxpayd with wxpaysim's ledger order by order, and each shop
// order id's answers, its admin list (GET /admin/v1/orders?shop_order_id=),
// its order's fields, events and stock with what the shop asked for (see
// audit_test.go for the invariants).
//
// Settings come from the environment:
//
//	CHAOS_SEED      the seed of every random choice (default: random; always printed)
//	CHAOS_DURATION  workload, faults and settling (default 2m; make chaos: 10m)
//	CHAOS_KILLS     minimum SIGKILL+restart cycles of wxpayd (default 3; make chaos: 20)
//	CHAOS_MIN_GAP   the least spacing of two background calls of one kind for one order
//	                (default: half of wxpayd's first query delay, the base of its backoff)
//	CHAOS_KEEP      a directory to keep the logs of a failed run in (default: a new one under $TMPDIR)
//	CHAOS_WXPAYD    a wxpayd binary to audit instead of building this tree's (bisecting)
//
// One math/rand/v2 PCG seeded from CHAOS_SEED makes the whole plan (SKUs,
// every buyer's script and its timing, the fault phases, the kill moments,
// wxpaysim's own seed) before anything runs, so a seed replays the same
// plan; what the operating system schedules differently is the only
// difference between two runs of one seed.
//
// The test runs when WXPAYD_INTEGRATION=1 (make test runs the short
// version, make chaos the long one) and fails if anything it needs is
// missing; a plain go test skips it.
package chaos
