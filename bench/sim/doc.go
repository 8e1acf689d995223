// Package sim is wxpaysim: a WeChat Pay (APIv3 and APIv2) and Mini Program
// login sandbox that behaves like the real services, for wxpayd's tests,
// `make run`, wxpaybench, and any merchant that wants to test against
// something stricter than a mock. WeChat Pay has no APIv3 sandbox.
//
// # What it serves
//
// WeChat's endpoints, paths and JSON as the real ones:
//
//	POST /v3/pay/transactions/jsapi                         prepay (JSAPI / Mini Program)
//	GET  /v3/pay/transactions/out-trade-no/{no}?mchid=      query
//	GET  /v3/pay/transactions/id/{transaction_id}?mchid=    query by WeChat's id (paid orders)
//	POST /v3/pay/transactions/out-trade-no/{no}/close       close (204)
//	POST /v3/refund/domestic/refunds                        refund
//	GET  /v3/refund/domestic/refunds/{out_refund_no}        refund query
//	GET  /v3/certificates                                   platform certificates (404 in public-key mode)
//	GET  /sns/jscode2session                                wx.login code exchange
//	POST /pay/unifiedorder                                  APIv2 prepay (XML)
//
// Every APIv3 request's Authorization is parsed and verified (signature over
// METHOD\nURL\nTS\nNONCE\nBODY\n with the merchant certificate's key, the
// merchant serial, and the timestamp within five minutes: else 401
// SIGN_ERROR). Fields and limits are validated (400 PARAM_ERROR with detail
// {field, value, issue, location}). Every APIv3 answer, errors included, is
// signed with Wechatpay-Timestamp/Nonce/Signature/Serial/Signature-Type and
// carries a Request-ID, with the WeChat Pay public key (publickey mode), the
// platform certificate (certificate mode) or either (mixed mode: the key the
// request names in Wechatpay-Serial, else a configurable share).
//
// The control API, outside WeChat's surface:
//
//	POST /sim/v1/pay {"prepay_id","openid"}  the buyer pays: 201 {"transaction_id"}, or 409 {"code","message"}
//	                                         (ORDER_CLOSED, ORDER_EXPIRED, ORDER_PAID, PREPAY_EXPIRED, OPENID_MISMATCH)
//	POST /sim/v1/login {"user"}              issue a wx.login code for a user: {"code","openid"}
//	GET  /sim/v1/orders/{out_trade_no}       an order's state and every notification delivery attempt
//	GET  /sim/v1/stats                       counters for auditing a load test (see Stats)
//	GET  /sim/v1/health                      200 once serving
//
// After a payment the TRANSACTION.SUCCESS notification (§5.1 envelope,
// AEAD_AES_256_GCM resource) goes to the order's notify_url and is retried on
// WeChat's schedule (RetrySchedule / --notify-speedup) until a 2xx arrives
// within 5 s; refunds succeed after --refund-delay and notify REFUND.SUCCESS
// the same way. APIv2 orders get the APIv2 XML notification instead, whose
// acknowledgement is return_code SUCCESS in the body. Fault injection adds
// extra copies (duplicate, tampered WECHATPAY/SIGNTEST/ signature, stale
// timestamp) that are counted apart from the genuine delivery, and can drop
// API answers after processing them.
//
// State lives in memory and is bounded (MaxOrders, MaxPending,
// MaxLoginCodes); beyond a bound the request is answered 503 SYSTEM_ERROR and
// counted. Close shuts down gracefully.
//
// # Choices where WeChat's behaviour is not documented (UNCONFIRMED)
//
//   - Close of a paid order: 400 ORDERPAID (APIv2's code for it). Closing a
//     closed order again: 204.
//   - Prepay of an out_trade_no that is paid: 400 ORDERPAID; closed: 400
//     ORDER_CLOSED; same out_trade_no with other parameters: 403
//     OUT_TRADE_NO_USED (reported by SDK users). An identical retry returns
//     the current prepay_id, renewed when the old one is past its 2 hours.
//   - An unpaid order past time_expire reads as CLOSED. A time_expire with
//     fractional seconds is 400 PARAM_ERROR.
//   - Authorization with an unknown mchid: 401 SIGN_ERROR. Body or query
//     mchid different from the Authorization's: 400 PARAM_ERROR on /mchid.
//   - Refund business rules (unpaid order, amount.total not the order's,
//     refunds beyond the total, more than 50 refunds, out_refund_no reused
//     for another order): 400 INVALID_REQUEST with WeChat's messages; unknown
//     order: 404 RESOURCE_NOT_EXISTS. A repeated out_refund_no returns the
//     same refund.
//   - notify_url may be http:// (WeChat requires https) so a local merchant
//     can be reached.
//   - jscode2session: wrong appid 40013, wrong secret 40125, wrong
//     grant_type 40002, missing code 41008 (WeChat's codes); a code not of
//     the form code-<anything>, or older than 5 minutes, 40029; reuse 40163.
//
// # Concurrency
//
// A Server is safe for concurrent use. Orders live in 64 shards, each with
// a mutex guarding its orders, their refunds and their delivery records;
// lock order is shard, then the store's index lock or the scheduler's heap
// lock; the heap lock is never held while taking a shard. Notification delivery
// is one scheduler goroutine over a timer heap and Config.NotifyWorkers
// workers; all goroutines are counted and Close waits for them.
package sim
