package sim

import (
	"encoding/json"
	"errors"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Sentinel errors of the simulator's Go API.
var (
	// ErrConfig: a Config field is invalid (Validate, New).
	ErrConfig = errors.New("sim: invalid config")
	// ErrKeys: the keys directory is missing, incomplete or inconsistent.
	ErrKeys = errors.New("sim: bad keys directory")
	// ErrClosed: the server was closed or never started.
	ErrClosed = errors.New("sim: server closed")
	// ErrOverloaded: a bounded store or queue is full; the request that
	// needed it is answered 503 SYSTEM_ERROR and counted in the stats.
	ErrOverloaded = errors.New("sim: overloaded")
	// ErrSpec: a --faults or --refund-outcomes SPEC does not parse
	// (ParseFaults, ParseRefundOutcomes, PUT /sim/v1/faults).
	ErrSpec = errors.New("sim: invalid spec")
)

// apiError is a WeChat APIv3 error answer: HTTP status and the JSON body
// {"code","message","detail"}.
type apiError struct {
	status  int
	code    string
	message string
	detail  *wxpay.ErrorDetail
}

func newErr(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

// paramError is 400 PARAM_ERROR with detail: field as a JSON pointer into
// the body ("/amount/total"), the offending value and the issue.
func paramError(field string, value any, issue string) *apiError {
	raw, _ := json.Marshal(value)
	return &apiError{
		status:  400,
		code:    wxpay.CodeParamError,
		message: "参数错误: " + field + " " + issue,
		detail:  &wxpay.ErrorDetail{Field: field, Value: raw, Issue: issue, Location: "body"},
	}
}

func (e *apiError) body() []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"code":`...)
	b = appendJSONString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	if e.detail != nil {
		b = append(b, `,"detail":{"field":`...)
		b = appendJSONString(b, e.detail.Field)
		if len(e.detail.Value) > 0 {
			b = append(b, `,"value":`...)
			b = append(b, e.detail.Value...)
		}
		b = append(b, `,"issue":`...)
		b = appendJSONString(b, e.detail.Issue)
		b = append(b, `,"location":`...)
		b = appendJSONString(b, e.detail.Location)
		b = append(b, '}')
	}
	return append(b, '}')
}

// Common answers.
var (
	errSignature   = func(msg string) *apiError { return newErr(401, wxpay.CodeSignError, msg) }
	errExpiredSign = newErr(401, wxpay.CodeSignError, "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟")
	errOverloaded  = newErr(503, wxpay.CodeSystemError, "系统繁忙，请稍后重试")
	errRateLimited = newErr(429, wxpay.CodeFrequencyLimited, "频率超限")
	errNotFound    = newErr(404, wxpay.CodeOrderNotExist, "订单不存在")
	errNoRoute     = newErr(404, wxpay.CodeResourceNotExists, "无此接口")
	errMethod      = newErr(405, wxpay.CodeInvalidRequest, "请求方法不被允许")
)
