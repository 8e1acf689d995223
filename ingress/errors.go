package ingress

import (
	"errors"
	"net/http"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// answer is an HTTP error answer: status, a stable code and a message that
// never carries secrets or request material.
type answer struct {
	status     int
	code       string
	message    string
	retryAfter int // seconds; 0 = no Retry-After header
}

// Codes of the buyer and admin API. They are a contract with clients.
const (
	codeBadRequest     = "BAD_REQUEST"
	codeUnauthorized   = "UNAUTHORIZED"
	codeSessionExpired = "SESSION_EXPIRED"
	codeForbidden      = "FORBIDDEN"
	codeNotFound       = "NOT_FOUND"
	codeSoldOut        = "SOLD_OUT"
	codeLimitExceeded  = "LIMIT_EXCEEDED"
	codeUnknownSKU     = "UNKNOWN_SKU"
	codeConflict       = "CONFLICT"
	codeIdemReused     = "IDEMPOTENCY_KEY_REUSED"
	codeInProgress     = "ORDER_IN_PROGRESS"
	codeOverloaded     = "OVERLOADED"
	codeUnavailable    = "SHARD_UNAVAILABLE"
	codeBudget         = "PREPAY_BUDGET_EXHAUSTED"
	codeUpstream       = "WECHAT_UNAVAILABLE"
	codeInvalidCode    = "INVALID_LOGIN_CODE"
	codeLoginBlocked   = "LOGIN_BLOCKED"
	codeInternal       = "INTERNAL"
	codeTooLarge       = "BODY_TOO_LARGE"
	codeMethod         = "METHOD_NOT_ALLOWED"
	// codeInvalidSession: a checkout names its buyer by a session token
	// that is not one of this server's (the shop's 400, not a 401).
	codeInvalidSession = "INVALID_SESSION"
	// codeBadCursor: a list's cursor that no page of that list handed out.
	codeBadCursor = "INVALID_CURSOR"
	// codeNotInAPIv2: the merchant runs APIv2, which has no such call
	// (apply-abnormal-refund); use the merchant platform.
	codeNotInAPIv2 = "NOT_IN_APIV2"
)

// apiAnswer maps an error from the actors, the WeChat client or the login
// client to the buyer/admin API's answer. One table, tested row by row.
func apiAnswer(err error) answer {
	var we *wxpay.APIError
	switch {
	case errors.Is(err, errNoSession), errors.Is(err, errBadSession):
		return answer{http.StatusUnauthorized, codeUnauthorized, "a valid session token is required", 0}
	case errors.Is(err, errExpiredSession):
		return answer{http.StatusUnauthorized, codeSessionExpired, "the session expired: log in again", 0}
	case errors.Is(err, errAdmin):
		return answer{http.StatusUnauthorized, codeUnauthorized, "admin token required", 0}
	case errors.Is(err, errShop):
		return answer{http.StatusUnauthorized, codeUnauthorized, "shop token required", 0}
	case errors.Is(err, actors.ErrOverloaded), errors.Is(err, errAdmission):
		return answer{http.StatusTooManyRequests, codeOverloaded, "too many requests in flight: retry shortly", 1}
	case errors.Is(err, actors.ErrTimeout):
		return answer{http.StatusServiceUnavailable, codeOverloaded, "the order did not answer in time: retry", 1}
	case errors.Is(err, actors.ErrUnavailable):
		return answer{http.StatusServiceUnavailable, codeUnavailable, "the order's node is unavailable: retry", 5}
	case errors.Is(err, actors.ErrStopped):
		return answer{http.StatusServiceUnavailable, codeOverloaded, "shutting down", 1}
	case errors.Is(err, actors.ErrUnknownSKU):
		return answer{http.StatusNotFound, codeUnknownSKU, "no such sku", 0}
	case errors.Is(err, actors.ErrStore):
		return answer{http.StatusInternalServerError, codeInternal, "storage failure: nothing was changed", 0}
	case errors.Is(err, client.ErrInvalidCode), errors.Is(err, client.ErrCodeUsed):
		return answer{http.StatusUnauthorized, codeInvalidCode, "the login code is invalid, expired or used", 0}
	case errors.Is(err, client.ErrLoginRateLimited):
		return answer{http.StatusTooManyRequests, codeOverloaded, "too many logins: retry in a minute", 60}
	case errors.Is(err, client.ErrHighRisk):
		return answer{http.StatusForbidden, codeLoginBlocked, "login blocked by WeChat", 0}
	case errors.Is(err, client.ErrV2Unsupported):
		return answer{http.StatusNotImplemented, codeNotInAPIv2, "not available in APIv2: use the merchant platform", 0}
	case errors.Is(err, client.ErrLoginBusy), errors.Is(err, client.ErrOverloaded):
		return answer{http.StatusServiceUnavailable, codeUpstream, "WeChat is busy: retry", 1}
	case errors.As(err, &we) && !errors.Is(err, client.ErrUnsignedResponse):
		if we.Code == wxpay.CodeFrequencyLimited {
			return answer{http.StatusTooManyRequests, codeBudget, "WeChat rate limit: retry shortly", 1}
		}
		return answer{http.StatusBadGateway, we.Code, "WeChat Pay refused the request", 0}
	case errors.Is(err, client.ErrTimeout), errors.Is(err, client.ErrTransport),
		errors.Is(err, client.ErrUnsignedResponse), errors.Is(err, client.ErrBadResponse):
		return answer{http.StatusBadGateway, codeUpstream, "WeChat Pay did not answer properly", 0}
	}
	return answer{http.StatusInternalServerError, codeInternal, "internal error", 0}
}

// notifyAnswer maps a notification failure to the status WeChat sees; any
// non-2xx makes WeChat retry on its schedule.
func notifyAnswer(err error) (int, string) {
	switch {
	case errors.Is(err, wxpay.ErrMissingHeader), errors.Is(err, wxpay.ErrBadTimestamp),
		errors.Is(err, wxpay.ErrExpired), errors.Is(err, wxpay.ErrUnknownSerial),
		errors.Is(err, wxpay.ErrUnsupportedSignatureType), errors.Is(err, wxpay.ErrBadSignatureEncoding),
		errors.Is(err, wxpay.ErrBadSignature), errors.Is(err, wxpay.ErrV2BadSign), errors.Is(err, wxpay.ErrV2MissingSign),
		errors.Is(err, wxpay.ErrV2UnsupportedSignType):
		return http.StatusUnauthorized, "signature verification failed"
	case errors.Is(err, wxpay.ErrUnsupportedAlgorithm), errors.Is(err, wxpay.ErrBadNonce),
		errors.Is(err, wxpay.ErrBadCiphertext), errors.Is(err, wxpay.ErrDecrypt), errors.Is(err, wxpay.ErrV2ReqInfo):
		return http.StatusBadRequest, "resource could not be decrypted"
	case errors.Is(err, wxpay.ErrMalformed), errors.Is(err, wxpay.ErrMissingField):
		return http.StatusBadRequest, "malformed notification"
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "body too large"
	case errors.Is(err, errUnknownOrder):
		return http.StatusNotFound, "unknown order"
	case errors.Is(err, errMismatch):
		return http.StatusBadRequest, "notification does not match the order"
	case errors.Is(err, actors.ErrOverloaded), errors.Is(err, errAdmission),
		errors.Is(err, actors.ErrTimeout), errors.Is(err, actors.ErrStopped):
		return http.StatusServiceUnavailable, "busy: retry"
	case errors.Is(err, actors.ErrUnavailable):
		return http.StatusServiceUnavailable, "order's node unavailable: retry"
	}
	return http.StatusInternalServerError, "not recorded: retry"
}

var (
	errAdmin        = errors.New("ingress: admin token required")
	errAdmission    = errors.New("ingress: admission limit reached")
	errTooLarge     = errors.New("ingress: body too large")
	errUnknownOrder = errors.New("ingress: unknown order")
	errMismatch     = errors.New("ingress: notification does not match the order")
)
