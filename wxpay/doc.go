// Package wxpay implements the WeChat Pay merchant protocol and nothing else:
// APIv3 request signing (Authorization WECHATPAY2-SHA256-RSA2048), verification
// of WeChat's signed responses and notifications against a key set that holds
// platform certificates and WeChat Pay public keys together, AEAD_AES_256_GCM,
// the notification envelope and its transaction and refund resources, the
// wx.requestPayment parameters (APIv3 RSA and APIv2 MD5/HMAC-SHA256), the
// RSA-OAEP encryption of sensitive request fields, and APIv2 map signing,
// XML and refund req_info decryption. The daily bills (bill.go) have
// streaming parsers and writers of the trade and fund-flow bill files, with
// amounts as exact integers, and a reader that checks a download's SHA1
// against the bill's hash_value.
//
// Notifications of both versions end as one Notice, a payment or a refund
// in the APIv3 model: (*NotifyParser).ParseNotice for APIv3 and
// (*V2Key).ParseNotice for APIv2 run every check on their way there. The
// APIv2 order API speaks the same model the other way: V2Merchant builds
// the signed unifiedorder, orderquery, closeorder, refund and refundquery
// documents from APIv3 requests and turns the verified replies back into
// APIv3 answers, and refusals into the APIv3 *APIError they would have
// been (V2APIError, v2errors.go).
//
// The package is transport-free: inputs are header values, raw body bytes, a
// key set and a clock. It imports neither net/http nor fasthttp; the HTTP
// clients live in wxpay/client.
//
// RSA work goes through a Backend. GoBackend uses crypto/rsa and is always
// available; wxpay/openssl provides an OpenSSL 3 backend (cgo) that signs
// about four times faster on CPUs with AVX-512 IFMA. PKCS#1 v1.5 signatures
// are deterministic, so both produce byte-identical results.
//
// Unless a type's documentation says otherwise, values are safe for
// concurrent use once built, and functions do not retain the slices passed to
// them.
package wxpay
