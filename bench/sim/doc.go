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
//	POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund
//	                                                        abnormal refund to a bank card or the merchant
//	GET  /v3/certificates                                   platform certificates (404 in public-key mode)
//	GET  /v3/bill/tradebill?bill_date=&bill_type=&tar_type= a day's trade bill: digest and download_url
//	GET  /v3/bill/fundflowbill?bill_date=&account_type=     a day's fund-flow bill, likewise
//	GET  /v3/billdownload/file?token=                       the file (authenticated, answer unsigned; bill.go)
//	GET  /sns/jscode2session                                wx.login code exchange
//	POST /pay/unifiedorder                                  APIv2 prepay (XML)
//	POST /pay/orderquery                                    APIv2 query, by out_trade_no or transaction_id
//	POST /pay/closeorder                                    APIv2 close
//	POST /secapi/pay/refund                                 APIv2 refund: TLS listener only, merchant client certificate
//	POST /pay/refundquery                                   APIv2 refund query, by refund_id, out_refund_no,
//	                                                        transaction_id or out_trade_no
//
// The APIv2 endpoints (v2.go, v2orders.go) check sign (MD5 or HMAC-SHA256,
// as the request's sign_type says), appid and mch_id, and answer XML signed
// with the request's sign type: result_code FAIL with WeChat's err_code for
// a business refusal, return_code FAIL (unsigned) for a request that could
// not be processed. They share the orders, refunds, ledger and fault
// endpoints of APIv3 (unifiedorder is prepay, orderquery query, closeorder
// close, /secapi/pay/refund refund, refundquery refund_query). The TLS
// listener (v2tls.go; Config.TLSListen) requires a client certificate
// issued by the identity's CA (keygen's apiclient_cert.pem is) and, on
// /secapi/, the merchant's own; it serves every path, the plain listener
// answers /secapi/ with return_code FAIL.
//
// Every APIv3 request's Authorization is parsed and verified (signature over
// METHOD\nURL\nTS\nNONCE\nBODY\n with the merchant certificate's key, the
// merchant serial, and the timestamp within five minutes: else 401
// SIGN_ERROR). Fields and limits are validated (400 PARAM_ERROR with detail
// {field, value, issue, location}). Every APIv3 answer, errors included,
// carries Wechatpay-Timestamp/Nonce/Signature/Serial/Signature-Type, a
// Request-ID and Content-Type: application/json; charset=utf-8 (the bodiless
// 204 too). It is signed with the WeChat Pay public key (publickey mode), the
// platform certificate (certificate mode) or, in mixed mode (WeChat's
// migration), the public key when the request's Wechatpay-Serial names its
// PUB_KEY_ID_... and the certificate otherwise.
// Notifications in mixed mode switch over gradually: a share
// (--mixed-share) is signed with the public key. A path outside /v3/, /sns/
// and /sim/ is APIv2's surface and answers APIv2's XML (return_code FAIL).
//
// The control API, outside WeChat's surface:
//
//	POST /sim/v1/pay {"prepay_id","openid"}  the buyer pays: 201 {"transaction_id"}, or 409 {"code","message"}
//	                                         (ORDER_CLOSED, ORDER_EXPIRED, ORDER_PAID, PREPAY_EXPIRED, OPENID_MISMATCH)
//	POST /sim/v1/login {"user"}              issue a wx.login code for a user: {"code","openid"}
//	GET  /sim/v1/orders/{out_trade_no}       an order's state and every notification delivery attempt
//	GET  /sim/v1/ledger[?out_trade_no=]      WeChat's books for audits (see Ledger)
//	GET  /sim/v1/faults                      {"faults":"SPEC","refund_outcomes":"SPEC2"} in force
//	PUT  /sim/v1/faults                      replace either or both (400 on a bad spec, nothing changed)
//	GET  /sim/v1/stats                       counters for auditing a load test (see Stats)
//	GET  /sim/v1/health                      200 once serving
//	POST /sim/v1/bills/generate {"date"}     freeze a day's bills from the ledger now
//	POST /sim/v1/bills/synthetic {"date","rows"}  a generated bill of any size (benchmarks)
//	POST /sim/v1/requestPayment {...}        WeChat's client's check of wx.requestPayment's parameters
//	                                         (paySign, prepay, payer): 200 the pay sheet, or 400/404/409 (miniprogram.go)
//	GET  /sim/miniprogram/                   the Mini Program simulator page (miniprogram.go)
//
// After a payment the TRANSACTION.SUCCESS notification (§5.1 envelope,
// AEAD_AES_256_GCM resource) goes to the order's notify_url and is retried on
// WeChat's schedule (RetrySchedule / --notify-speedup) until a 2xx arrives
// within 5 s. A refund holds its amount while PROCESSING and after
// --refund-delay ends SUCCESS, CLOSED (the amount is refundable again) or
// ABNORMAL (held until apply-abnormal-refund, which makes it PROCESSING and
// then SUCCESS), drawn from --refund-outcomes, with the matching
// REFUND.SUCCESS, REFUND.CLOSED or REFUND.ABNORMAL notification. APIv2
// orders get the APIv2 XML payment notification instead, and refunds made
// through /secapi/pay/refund the APIv2 refund notification (no sign; the
// refund in req_info, AES-256-ECB under the hex MD5 of the APIv2 key;
// refund_status SUCCESS, REFUNDCLOSE or CHANGE); an APIv2 notification is
// acknowledged by return_code SUCCESS in the body and retried on the same
// schedule otherwise. Its tampered copy has a wrong sign (payments) or a
// req_info that no longer decrypts (refunds); it has no stale copy (APIv2
// notifications carry no timestamp).
//
// Fault injection, all drawn from the --seed generator:
//   - Notifications get extra copies (duplicate, tampered WECHATPAY/SIGNTEST/
//     signature, stale timestamp), counted apart from the genuine delivery.
//   - --drop-rate loses API answers after processing them.
//   - --faults makes each endpoint fail as a remote service does
//     (system_error, rate_limited, bad_gateway, slow, lost; and
//     bill_download.corrupt, a bill whose digest fails; see faults.go),
//     counted in Stats.APIFaults and on the order's ledger calls.
//
// State lives in memory and is bounded (MaxOrders, MaxPending,
// MaxLoginCodes); beyond a bound the request is answered 503 SYSTEM_ERROR and
// counted. Close shuts down gracefully.
//
// # Choices where WeChat's behaviour is not documented (UNCONFIRMED)
//
//   - Close of a paid order: 400 ORDERPAID. APIv3's close tables list no
//     code for it; ORDERPAID ("订单已支付，不能发起关单") is APIv2's, and
//     merchants report getting it from close calls. Closing a closed order
//     again: 204.
//   - Prepay of an out_trade_no that is paid: 400 ORDERPAID (APIv3's prepay
//     tables list no code for it; APIv2's ORDERPAID); closed: 400
//     ORDER_CLOSED (listed); same out_trade_no with other parameters: 403
//     OUT_TRADE_NO_USED (reported by SDK users). An identical retry returns
//     the current prepay_id, renewed when the old one is past its 2 hours.
//   - An unpaid order past time_expire reads as CLOSED. A time_expire with
//     fractional seconds is 400 PARAM_ERROR.
//   - Authorization with an unknown mchid: 401 SIGN_ERROR. Body or query
//     mchid different from the Authorization's: 400 PARAM_ERROR on /mchid.
//   - Refund business rules (unpaid order, amount.total not the order's,
//     more than 50 refunds, out_refund_no reused for another order): 400
//     INVALID_REQUEST with WeChat's messages; unknown order: 404
//     RESOURCE_NOT_EXISTS. amount.refund above amount.total: 400
//     PARAM_ERROR. A refund beyond what is refundable (the total less
//     SUCCESS, PROCESSING and ABNORMAL refunds, compared by subtraction): 403
//     NOT_ENOUGH (WeChat documents NOT_ENOUGH for a short merchant balance).
//   - A repeated out_refund_no with the same amounts returns the same refund
//     and never refunds twice; with another amount it is REFUND_FEE_MISMATCH
//     "订单金额或退款金额与之前请求不一致，请核实后再试" (APIv2's code and text;
//     APIv3's FAQ names the code) with HTTP 400 (status not documented).
//   - A CLOSED refund leaves the order's trade_state REFUND.
//   - apply-abnormal-refund: the fields (out_refund_no; type USER_BANK_CARD
//     or MERCHANT_BANK_CARD; bank_type, bank_account, real_name for a user
//     card, the last two encrypted with the key Wechatpay-Serial names) and
//     the fifteen bank_type values follow WeChat's page as copied by
//     wechatpay.im; that bank_type, bank_account and real_name are required
//     only for USER_BANK_CARD follows SDK users. The simulator's choices:
//     RSAES-OAEP with SHA-1 (WeChat's sensitive-field cipher); a bad field
//     or a missing/unknown Wechatpay-Serial is 400 PARAM_ERROR; a refund_id
//     and out_refund_no that do not name the same refund is 404
//     RESOURCE_NOT_EXISTS; a refund not ABNORMAL is 400 INVALID_REQUEST; the
//     refund then reads channel OTHER_BANKCARD (user card) and
//     user_received_account "<bank_type>尾号<last 4>" or "商户结算银行账户".
//   - Injected faults: the APIv2 endpoints answer system_error and
//     rate_limited as result_code FAIL with err_code SYSTEMERROR or
//     FREQUENCY_LIMITED (the latter is APIv2 refund's code), lost as
//     SYSTEMERROR or a cut connection; unifiedorder shares APIv3 prepay's
//     rate limit (--rate-limit) and answers it FREQUENCY_LIMITED;
//   - APIv2 err_codes: closing a closed order ORDERCLOSED "当前订单已关闭，
//     无需继续关闭", a paid one ORDERPAID; query or close of an unknown
//     order ORDERNOTEXIST; refund of an unknown order ORDERNOTEXIST, of an
//     unpaid one TRADE_STATE_ERROR, with another total_fee or a reused
//     out_refund_no of another order ERROR, beyond the refundable amount
//     NOTENOUGH, a repeated out_refund_no with another amount
//     REFUND_FEE_MISMATCH; refund query of an unknown refund
//     REFUNDNOTEXIST. A call to /secapi/ without the merchant's
//     certificate: return_code FAIL "请使用商户API证书访问此接口". A v2 refund
//     without notify_url is notified at its order's notify_url (WeChat uses
//     the refund URL set in the merchant platform).
//     jscode2session answers errcode -1 "system error" and 45011 "api
//     minute-quota reach limit  mustslower  retry next minute".
//   - A path outside WeChat's APIs and outside /v3/, /sns/ and /sim/ is
//     answered HTTP 200 with <xml><return_code><![CDATA[FAIL]]></return_code>
//     <return_msg><![CDATA[…]]></return_msg></xml>, as APIv2 answers its
//     failures.
//   - The ledger's unknown_orders, trade_state NOT_EXIST (out_trade_nos
//     called but never created), are the simulator's, not WeChat's.
//   - notify_url may be http:// (WeChat requires https) so a local merchant
//     can be reached.
//   - wx.requestPayment (/sim/v1/requestPayment and the simulator page):
//     a paySign that does not verify fails "requestPayment:fail
//     支付验证签名失败", the wording buyers and developers report; the
//     client's other failures (unknown, paid, expired prepay, another payer)
//     carry this simulator's codes and messages.
//   - Bills (bill.go lists the model): the day a refund row lands on (the
//     day it was requested), its 退款金额 while not successful (its
//     amount), 退款状态 values other than SUCCESS (PROCESSING, REFUNDCLOSE,
//     CHANGE: APIv2's refund query values), the fee (round-half-up of
//     0.60%, negative on refunds), the fund-flow rows and their ids; an
//     empty SUCCESS or REFUND bill is served rather than NO_STATEMENT_EXIST;
//     400 INVALID_REQUEST for today, a future day or one more than three
//     months back; 404 RESOURCE_NOT_EXISTS for an unknown or expired
//     download token; \r\n line ends; the download's Content-Type
//     (application/octet-stream) and its signed JSON errors; gzip at
//     BestSpeed.
//   - jscode2session: wrong appid 40013, wrong secret 40125, wrong
//     grant_type 40002, missing code 41008 (WeChat's codes); a code not of
//     the form code-<anything>, or older than 5 minutes, 40029; reuse 40163.
//
// # Concurrency
//
// A Server is safe for concurrent use. Orders live in 64 shards, each with
// a mutex guarding its orders, their refunds, their delivery records and
// ledger calls, and the calls for unknown out_trade_nos; lock order is
// shard, then the store's index lock or the scheduler's heap lock; the heap
// lock is never held while taking a shard; the bill store's lock comes
// before any shard (a day's bills are frozen by scanning the shards under
// it) and is never taken under one; the random generator's lock is
// a leaf, taken under a shard or alone. Fault and outcome specs are
// immutable values swapped atomically. Notification delivery is one
// scheduler goroutine over a timer heap and Config.NotifyWorkers workers;
// all goroutines are counted and Close waits for them. A slow fault waits
// in its request's own (fasthttp) goroutine, bounded by fasthttp's
// concurrency limit; Close cuts the waits short.
package sim
