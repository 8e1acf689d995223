// Package client is the HTTP side of the WeChat Pay protocol: a merchant API
// client (JSAPI prepay, query, close, refunds and abnormal refunds, platform
// certificates, daily bills: TradeBill, FundFlowBill and DownloadBill, which
// streams the file and checks its digest because WeChat does not sign it), a
// refresher that keeps platform certificates current, and a jscode2session
// login client. It runs on fasthttp's HostClient; the protocol itself
// (signing, verification, AEAD, models) is package wxpay, which stays
// transport-free.
//
// V2Client is the same order API for a merchant on APIv2 (v2client.go):
// XML to /pay/unifiedorder, /pay/orderquery, /pay/closeorder,
// /secapi/pay/refund (TLS with the merchant's API client certificate) and
// /pay/refundquery, every reply's sign verified, answers and refusals
// translated into the APIv3 model by wxpay.V2Merchant, so Outcome and the
// order actors treat both APIs alike.
//
// # Requests and answers
//
// Every merchant API request carries an Authorization header made by the
// wxpay.Signer over METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n (a fresh nonce,
// the client's clock in Unix seconds, the URL exactly as sent including its
// query), Accept: application/json, Content-Type: application/json when it
// has a body, a User-Agent, and Wechatpay-Serial naming the newest key of the
// verifier's key set when there is one. Sensitive fields (an abnormal
// refund's bank account and name) are encrypted with that key
// (wxpay.EncryptSensitive), and the request names the key that encrypted
// them.
//
// Every answer, 2xx or not, must carry Wechatpay-* headers that verify over
// the exact raw body. A 2xx that does not verify is an error wrapping
// ErrUnsignedResponse and the wxpay cause; it is never decoded. A non-2xx
// answer is decoded into a *wxpay.APIError (find it with errors.As); when
// that answer does not verify, the APIError is still returned, wrapped
// together with ErrUnsignedResponse, so callers can tell a WeChat-signed
// refusal (act on it) from an unverified one (treat as advisory: retry or
// query, never mark an order failed on it alone). Outcome makes that call
// for any error a Client returns: a definitive answer, or an outcome that
// is unknown because the request may have taken effect.
//
// # Limits
//
// Each call has a deadline: the earlier of the context's deadline and
// Config.Timeout. A cancelled context returns at once with ctx.Err()
// wrapped; the abandoned exchange finishes in a tracked goroutine bounded
// by the same deadline. The connection pool is bounded (Config.MaxConns);
// a caller that cannot get a connection within Config.MaxConnWaitTimeout
// gets ErrOverloaded instead of queueing. Answers larger than
// Config.MaxResponseBodySize are refused. Certificate downloads are
// rate-limited (MinRefreshInterval) and shared between concurrent callers.
//
// # Errors and secrets
//
// Errors wrap the sentinels in errors.go and the wxpay sentinels. They name
// the operation, HTTP status, WeChat's code and message, serials and request
// ids. They never contain keys, Authorization values, the app secret,
// session keys or bodies beyond WeChat's code and message. The package logs
// nothing; per-call latency is reported to an optional Observer.
//
// # Concurrency
//
// Client, CertRefresher and LoginClient are safe for concurrent use.
// Close refuses new calls and waits for calls and goroutines in flight
// (Client.Close is the WeChat API that closes an order).
package client
