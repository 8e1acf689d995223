package wxpay

import "errors"

// Sentinel errors. Every failure a caller branches on wraps exactly one of
// these; check with errors.Is. Wrapped messages carry serials, ids and field
// names, never keys, plaintext or signatures.
var (
	// ErrMissingHeader: a required Wechatpay-* header value is empty.
	ErrMissingHeader = errors.New("wxpay: missing header")
	// ErrBadTimestamp: Wechatpay-Timestamp is not a decimal Unix time in seconds.
	ErrBadTimestamp = errors.New("wxpay: malformed timestamp")
	// ErrExpired: the timestamp lies outside the freshness window (stale or future).
	ErrExpired = errors.New("wxpay: timestamp outside the allowed window")
	// ErrUnknownSerial: no key in the key set has the Wechatpay-Serial given.
	ErrUnknownSerial = errors.New("wxpay: unknown key serial")
	// ErrUnsupportedSignatureType: Wechatpay-Signature-Type names another scheme.
	ErrUnsupportedSignatureType = errors.New("wxpay: unsupported signature type")
	// ErrBadSignatureEncoding: the signature is not standard Base64 of the key's size.
	// WECHATPAY/SIGNTEST/ probes fail with this error or ErrBadSignature.
	ErrBadSignatureEncoding = errors.New("wxpay: malformed signature")
	// ErrBadSignature: the signature does not verify with the selected key.
	ErrBadSignature = errors.New("wxpay: signature verification failed")

	// ErrKeyLength: an APIv3 key is not 32 bytes.
	ErrKeyLength = errors.New("wxpay: APIv3 key must be 32 bytes")
	// ErrUnsupportedAlgorithm: resource.algorithm is not AEAD_AES_256_GCM.
	ErrUnsupportedAlgorithm = errors.New("wxpay: unsupported resource algorithm")
	// ErrBadNonce: the AEAD nonce is not 12 bytes.
	ErrBadNonce = errors.New("wxpay: AEAD nonce must be 12 bytes")
	// ErrBadCiphertext: the ciphertext is not Base64 or is shorter than the tag.
	ErrBadCiphertext = errors.New("wxpay: malformed ciphertext")
	// ErrDecrypt: authentication failed (wrong key, nonce, associated data or tampered data).
	ErrDecrypt = errors.New("wxpay: decryption failed")

	// ErrMalformed: a JSON or XML document is not what the protocol defines.
	ErrMalformed = errors.New("wxpay: malformed document")
	// ErrMissingField: a field the protocol requires is absent or empty.
	ErrMissingField = errors.New("wxpay: missing field")

	// ErrBadKey: a PEM key or certificate cannot be parsed or is not RSA.
	ErrBadKey = errors.New("wxpay: bad key")
	// ErrSensitive: a sensitive request field cannot be encrypted (empty,
	// too long for the key) or decrypted.
	ErrSensitive = errors.New("wxpay: sensitive field not encrypted")

	// ErrV2MissingSign: an APIv2 document has no sign field.
	ErrV2MissingSign = errors.New("wxpay: APIv2 sign missing")
	// ErrV2BadSign: an APIv2 sign does not match (compared in constant time;
	// a lower-case hex sign is a mismatch).
	ErrV2BadSign = errors.New("wxpay: APIv2 sign mismatch")
	// ErrV2UnsupportedSignType: sign_type is neither MD5 nor HMAC-SHA256.
	ErrV2UnsupportedSignType = errors.New("wxpay: unsupported APIv2 sign type")
	// ErrV2ReqInfo: an APIv2 refund req_info cannot be decoded or decrypted.
	ErrV2ReqInfo = errors.New("wxpay: bad APIv2 req_info")

	// ErrBillDigest: a downloaded bill's SHA1 differs from hash_value (or
	// hash_type is not SHA1): the file was corrupted or tampered with.
	ErrBillDigest = errors.New("wxpay: bill digest mismatch")
	// ErrBillLayout: a bill's header row or summary header is not a known
	// layout (unknown, missing or repeated column), or is another bill type
	// than the one asked for.
	ErrBillLayout = errors.New("wxpay: unknown bill layout")
	// ErrBillTruncated: a bill ends before its summary row (empty, or cut).
	ErrBillTruncated = errors.New("wxpay: bill truncated")
	// ErrBillMalformed: a bill row is malformed: a field count, an amount, a
	// time, a required field, a line longer than the limit, or data after
	// the summary row.
	ErrBillMalformed = errors.New("wxpay: malformed bill row")
	// ErrBillSummary: a bill's summary row disagrees with its rows (count or
	// a sum).
	ErrBillSummary = errors.New("wxpay: bill summary does not match its rows")
)
