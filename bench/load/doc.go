// Package load is wxpaybench's engine: flash-sale, steady, notify-storm and
// mixed load against a running wxpayd stack (wxpayd nodes, wxpaysim playing
// WeChat Pay, and optionally ClickHouse), an end-state audit, and the JSON
// and HTML reports.
//
// # What a virtual buyer does
//
// Exactly what the Mini Program does: POST /api/v1/login with a wx.login
// code, POST /api/v1/orders (prepay), then wx.requestPayment, played by
// wxpaysim's POST /sim/v1/pay, then GET /api/v1/orders/{out_trade_no} until
// the order reads PAID. The buyer's openid, which /sim/v1/pay needs, is
// derived locally from the code and the appId of the prepay answer, the way
// the simulator derives it (sim.OpenID): no extra request.
//
// # Measuring
//
// Each step has an HDR histogram (1 µs to 5 min, 3 significant figures) for
// the whole run and a 1-second window histogram for the time series. Open-loop
// arrivals (steady, ramp, rate) have an intended start time; the first request
// of an arrival is measured from it, so time spent waiting behind a slow
// server or a busy connection pool counts (no coordinated omission). Work a
// real Mini Program does before a sale opens (logging in the flash-sale
// buyers, creating the SKUs) happens in a prepare phase before the timed
// window and is reported apart. wxpaysim signs and sends notifications
// itself, so nothing in the timed window signs on the generator's side.
//
// # Refunds and WeChat's failures
//
// With Config.RefundShare the admin refunds a share of the paid orders once
// their buyer saw PAID (POST /admin/v1/orders/{out_trade_no}/refunds, one
// Idempotency-Key per order, retried after 429, 5xx or no answer). With
// Config.SimFaults and SimRefundOutcomes, wxpaysim fails WeChat calls
// (errors, rate limits, unsigned 502s, slow and lost answers) and ends
// refunds CLOSED or ABNORMAL during the timed window; its previous settings
// come back before the audit, so wxpayd's retries settle, and the audit
// compares every refund with wxpaysim's.
//
// # Audit
//
// After the window the run drains (wxpaysim's pending notifications and
// fault copies finish) and Audit checks the end state; see Audit for the
// list. A failed check makes Run return ErrAuditFailed.
//
// # Concurrency
//
// Run owns every goroutine it starts and returns after they end; a Config is
// read, never written. The recorder is safe for concurrent use.
package load
