package wxpay

import (
	"net/http"
	"strings"
)

// APIv2 answers a refusal with HTTP 200 and a document: return_code FAIL
// when the request was refused before it was processed (a bad sign, bad
// XML, a wrong mch_id), result_code FAIL with an err_code when the business
// refused it. V2APIError and V2ReturnError turn both into the *APIError of
// APIv3, with an HTTP status chosen so that the rules written for APIv3
// answers (client.Outcome: a status below 500 is a definitive refusal, 500
// and above an unknown outcome; 429 asks for a later retry) apply unchanged.
//
// err_code (result_code FAIL, signed)   → status, Code
//
//	SYSTEMERROR, BIZERR_NEED_RETRY       → 500 SYSTEM_ERROR (unknown: retry with the same number or query)
//	BANKERROR                            → 500 BANK_ERROR
//	FREQUENCY_LIMITED, INVALID_REQ_TOO_MUCH → 429 FREQUENCY_LIMITED
//	ORDERPAID                            → 400 ORDERPAID (CodeOrderPaid)
//	ORDERCLOSED, ORDERREVERSED           → 400 ORDER_CLOSED
//	ORDERNOTEXIST                        → 404 ORDER_NOT_EXIST
//	REFUNDNOTEXIST                       → 404 RESOURCE_NOT_EXISTS
//	OUT_TRADE_NO_USED                    → 403 OUT_TRADE_NO_USED
//	NOAUTH                               → 403 NO_AUTH
//	NOTENOUGH                            → 403 NOT_ENOUGH
//	USER_ACCOUNT_ABNORMAL                → 403 USER_ACCOUNT_ABNORMAL
//	SIGNERROR                            → 401 SIGN_ERROR
//	APPID_MCHID_NOT_MATCH                → 400 APPID_MCHID_NOT_MATCH
//	MCHID_NOT_EXIST                      → 400 MCH_NOT_EXISTS
//	LACK_PARAMS, PARAM_ERROR, XML_FORMAT_ERROR, NOT_UTF8,
//	POST_DATA_EMPTY, REQUIRE_POST_METHOD → 400 PARAM_ERROR
//	REFUND_FEE_MISMATCH, REFUND_FEE_INVALID → 400 REFUND_FEE_MISMATCH
//	any other err_code (APPID_NOT_EXIST, TRADE_OVERDUE, INVALID_TRANSACTIONID, ERROR ...)
//	                                     → 400 with the err_code as it is
//
// return_code FAIL (unsigned; WeChat signs only what it processed) → by
// return_msg: a busy or failing system (繁忙, 系统, 超时) → 500
// SYSTEM_ERROR; a sign failure (签名) → 401 SIGN_ERROR; a certificate
// failure (证书) → 403 NO_AUTH; anything else → 400 PARAM_ERROR. Reading
// the text is a best effort: WeChat documents return_msg as free text
// (UNCONFIRMED wording).

// v2Codes maps the err_codes that have an APIv3 counterpart or a status
// other than 400.
var v2Codes = map[string]struct {
	status int
	code   string
}{
	"SYSTEMERROR":           {http.StatusInternalServerError, CodeSystemError},
	"BIZERR_NEED_RETRY":     {http.StatusInternalServerError, CodeSystemError},
	"BANKERROR":             {http.StatusInternalServerError, "BANK_ERROR"},
	"FREQUENCY_LIMITED":     {http.StatusTooManyRequests, CodeFrequencyLimited},
	"INVALID_REQ_TOO_MUCH":  {http.StatusTooManyRequests, CodeFrequencyLimited},
	"ORDERPAID":             {http.StatusBadRequest, CodeOrderPaid},
	"ORDERCLOSED":           {http.StatusBadRequest, CodeOrderClosed},
	"ORDERREVERSED":         {http.StatusBadRequest, CodeOrderClosed},
	"ORDERNOTEXIST":         {http.StatusNotFound, CodeOrderNotExist},
	"REFUNDNOTEXIST":        {http.StatusNotFound, CodeResourceNotExists},
	"OUT_TRADE_NO_USED":     {http.StatusForbidden, CodeOutTradeNoUsed},
	"NOAUTH":                {http.StatusForbidden, CodeNoAuth},
	"NOTENOUGH":             {http.StatusForbidden, CodeNotEnough},
	"USER_ACCOUNT_ABNORMAL": {http.StatusForbidden, "USER_ACCOUNT_ABNORMAL"},
	"SIGNERROR":             {http.StatusUnauthorized, CodeSignError},
	"APPID_MCHID_NOT_MATCH": {http.StatusBadRequest, CodeAppIDMchIDMismatch},
	"MCHID_NOT_EXIST":       {http.StatusBadRequest, CodeMchNotExists},
	"LACK_PARAMS":           {http.StatusBadRequest, CodeParamError},
	"PARAM_ERROR":           {http.StatusBadRequest, CodeParamError},
	"XML_FORMAT_ERROR":      {http.StatusBadRequest, CodeParamError},
	"NOT_UTF8":              {http.StatusBadRequest, CodeParamError},
	"POST_DATA_EMPTY":       {http.StatusBadRequest, CodeParamError},
	"REQUIRE_POST_METHOD":   {http.StatusBadRequest, CodeParamError},
	"REFUND_FEE_MISMATCH":   {http.StatusBadRequest, "REFUND_FEE_MISMATCH"},
	"REFUND_FEE_INVALID":    {http.StatusBadRequest, "REFUND_FEE_MISMATCH"},
}

// V2APIError translates the err_code and err_code_des of a signed APIv2
// reply whose result_code is FAIL into the APIv3 error the same refusal
// would have been (see the table above). The message keeps the original
// err_code, so logs and alerts still name it. Text from the reply is
// bounded and cleared of control characters.
func V2APIError(errCode, errCodeDes string) *APIError {
	errCode = printable(errCode, 64)
	e := &APIError{Status: http.StatusBadRequest, Code: errCode, Message: errCode}
	if errCodeDes != "" {
		e.Message += ": " + printable(errCodeDes, 256)
	}
	if m, ok := v2Codes[errCode]; ok {
		e.Status, e.Code = m.status, m.code
	}
	if e.Code == "" {
		e.Code = "RESULT_FAIL" // result_code FAIL without an err_code
	}
	return e
}

// V2ReturnError translates the return_msg of an APIv2 reply whose
// return_code is FAIL (see the table above).
func V2ReturnError(returnMsg string) *APIError {
	msg := printable(returnMsg, 256)
	e := &APIError{Status: http.StatusBadRequest, Code: CodeParamError, Message: "return_code FAIL: " + msg}
	switch {
	case strings.Contains(msg, "繁忙"), strings.Contains(msg, "系统"), strings.Contains(msg, "超时"),
		strings.Contains(msg, "SYSTEMERROR"):
		e.Status, e.Code = http.StatusInternalServerError, CodeSystemError
	case strings.Contains(msg, "签名"):
		e.Status, e.Code = http.StatusUnauthorized, CodeSignError
	case strings.Contains(msg, "证书"):
		e.Status, e.Code = http.StatusForbidden, CodeNoAuth
	}
	return e
}
