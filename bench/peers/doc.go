// Package peers holds cross-checks and side-by-side benchmarks against the
// official WeChat Pay Go SDK (wechatpay-go) and go-pay/gopay. They are
// independent oracles: what wxpayd signs they must verify, and what they sign
// or encrypt wxpayd must verify and decrypt. This is a separate module so the
// product never depends on them.
package peers
