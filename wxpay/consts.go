package wxpay

import "time"

// Header names of APIv3 requests, responses and notifications.
const (
	HeaderAuthorization = "Authorization"
	HeaderTimestamp     = "Wechatpay-Timestamp"
	HeaderNonce         = "Wechatpay-Nonce"
	HeaderSignature     = "Wechatpay-Signature"
	HeaderSerial        = "Wechatpay-Serial"
	HeaderSignatureType = "Wechatpay-Signature-Type"
	HeaderRequestID     = "Request-ID"
)

// Schemes and algorithm names as they appear on the wire.
const (
	// SignatureType is the only APIv3 signature scheme: the Authorization
	// scheme and the Wechatpay-Signature-Type value.
	SignatureType = "WECHATPAY2-SHA256-RSA2048"
	// AlgorithmAESGCM is resource.algorithm for AEAD_AES_256_GCM.
	AlgorithmAESGCM = "AEAD_AES_256_GCM"
	// PublicKeyIDPrefix starts every WeChat Pay public-key id.
	PublicKeyIDPrefix = "PUB_KEY_ID_"
	// SignTestPrefix starts the deliberately wrong signatures of WeChat's probes.
	SignTestPrefix = "WECHATPAY/SIGNTEST/"
)

// DefaultWindow is how far a Wechatpay-Timestamp may be from now, either way.
const DefaultWindow = 5 * time.Minute
