package wxpay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Trade states of a transaction (query answers and notifications).
const (
	TradeStateSuccess    = "SUCCESS"
	TradeStateRefund     = "REFUND"
	TradeStateNotPay     = "NOTPAY"
	TradeStateClosed     = "CLOSED"
	TradeStateRevoked    = "REVOKED"
	TradeStateUserPaying = "USERPAYING"
	TradeStatePayError   = "PAYERROR"
)

// Refund statuses. Some documentation copies spell CLOSED as CLOSE; use
// NormalizeRefundStatus on input.
const (
	RefundStatusSuccess    = "SUCCESS"
	RefundStatusClosed     = "CLOSED"
	RefundStatusProcessing = "PROCESSING"
	RefundStatusAbnormal   = "ABNORMAL"
)

// NormalizeRefundStatus maps the CLOSE spelling to CLOSED.
func NormalizeRefundStatus(s string) string {
	if s == "CLOSE" {
		return RefundStatusClosed
	}
	return s
}

// Amount is an order amount in fen.
type Amount struct {
	Total    int64  `json:"total"`
	Currency string `json:"currency,omitempty"`
}

// Payer identifies the buyer.
type Payer struct {
	OpenID string `json:"openid"`
}

// GoodsDetail is one line of PrepayRequest.Detail.
type GoodsDetail struct {
	MerchantGoodsID  string `json:"merchant_goods_id"`
	WechatpayGoodsID string `json:"wechatpay_goods_id,omitempty"`
	GoodsName        string `json:"goods_name,omitempty"`
	Quantity         int64  `json:"quantity"`
	UnitPrice        int64  `json:"unit_price"`
}

// Detail is the optional order detail of a prepay request.
type Detail struct {
	CostPrice   int64         `json:"cost_price,omitempty"`
	InvoiceID   string        `json:"invoice_id,omitempty"`
	GoodsDetail []GoodsDetail `json:"goods_detail,omitempty"`
}

// SceneInfo is the optional scene of a prepay request.
type SceneInfo struct {
	PayerClientIP string `json:"payer_client_ip"`
	DeviceID      string `json:"device_id,omitempty"`
}

// SettleInfo is the optional settlement option of a prepay request.
type SettleInfo struct {
	ProfitSharing bool `json:"profit_sharing"`
}

// PrepayRequest is the body of POST /v3/pay/transactions/jsapi.
type PrepayRequest struct {
	AppID         string      `json:"appid"`
	MchID         string      `json:"mchid"`
	Description   string      `json:"description"`
	OutTradeNo    string      `json:"out_trade_no"`
	TimeExpire    string      `json:"time_expire,omitempty"`
	Attach        string      `json:"attach,omitempty"`
	NotifyURL     string      `json:"notify_url"`
	GoodsTag      string      `json:"goods_tag,omitempty"`
	SupportFapiao bool        `json:"support_fapiao,omitempty"`
	Amount        Amount      `json:"amount"`
	Payer         Payer       `json:"payer"`
	Detail        *Detail     `json:"detail,omitempty"`
	SceneInfo     *SceneInfo  `json:"scene_info,omitempty"`
	SettleInfo    *SettleInfo `json:"settle_info,omitempty"`
}

// PrepayResponse is the answer to a prepay request. A prepay_id is valid for
// two hours.
type PrepayResponse struct {
	PrepayID string `json:"prepay_id"`
}

// CloseRequest is the body of POST .../out-trade-no/{no}/close.
type CloseRequest struct {
	MchID string `json:"mchid"`
}

// TransactionAmount is the amount part of a transaction.
type TransactionAmount struct {
	Total         int64  `json:"total"`
	PayerTotal    int64  `json:"payer_total"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
}

// Transaction is the resource of TRANSACTION.SUCCESS and the answer of the
// query APIs.
type Transaction struct {
	AppID          string            `json:"appid"`
	MchID          string            `json:"mchid"`
	OutTradeNo     string            `json:"out_trade_no"`
	TransactionID  string            `json:"transaction_id,omitempty"`
	TradeType      string            `json:"trade_type,omitempty"`
	TradeState     string            `json:"trade_state"`
	TradeStateDesc string            `json:"trade_state_desc"`
	BankType       string            `json:"bank_type,omitempty"`
	Attach         string            `json:"attach"`
	SuccessTime    string            `json:"success_time,omitempty"`
	Payer          Payer             `json:"payer"`
	Amount         TransactionAmount `json:"amount"`
}

// DecodeTransaction decodes a transaction document and requires appid,
// mchid, out_trade_no and trade_state; a SUCCESS state also requires
// transaction_id and a positive amount.total.
func DecodeTransaction(doc []byte) (Transaction, error) {
	var t Transaction
	var s seen
	err := forEachMember(string(doc), func(f jsonField) error {
		var err error
		switch f.key {
		case "appid":
			if err = s.mark(0, f.key); err == nil {
				t.AppID, err = jsonString(f)
			}
		case "mchid":
			if err = s.mark(1, f.key); err == nil {
				t.MchID, err = jsonString(f)
			}
		case "out_trade_no":
			if err = s.mark(2, f.key); err == nil {
				t.OutTradeNo, err = jsonString(f)
			}
		case "transaction_id":
			if err = s.mark(3, f.key); err == nil {
				t.TransactionID, err = jsonString(f)
			}
		case "trade_type":
			if err = s.mark(4, f.key); err == nil {
				t.TradeType, err = jsonString(f)
			}
		case "trade_state":
			if err = s.mark(5, f.key); err == nil {
				t.TradeState, err = jsonString(f)
			}
		case "trade_state_desc":
			if err = s.mark(6, f.key); err == nil {
				t.TradeStateDesc, err = jsonString(f)
			}
		case "bank_type":
			if err = s.mark(7, f.key); err == nil {
				t.BankType, err = jsonString(f)
			}
		case "attach":
			if err = s.mark(8, f.key); err == nil {
				t.Attach, err = jsonString(f)
			}
		case "success_time":
			if err = s.mark(9, f.key); err == nil {
				t.SuccessTime, err = jsonString(f)
			}
		case "payer":
			if err = s.mark(10, f.key); err == nil {
				err = jsonObject(f, func(f jsonField) error {
					if f.key == "openid" {
						var err error
						t.Payer.OpenID, err = jsonString(f)
						return err
					}
					return nil
				})
			}
		case "amount":
			if err = s.mark(11, f.key); err == nil {
				err = decodeTxAmount(f, &t.Amount)
			}
		}
		return err
	})
	if err != nil {
		return Transaction{}, err
	}
	switch {
	case t.AppID == "":
		return t, fmt.Errorf("%w: appid", ErrMissingField)
	case t.MchID == "":
		return t, fmt.Errorf("%w: mchid", ErrMissingField)
	case t.OutTradeNo == "":
		return t, fmt.Errorf("%w: out_trade_no", ErrMissingField)
	case t.TradeState == "":
		return t, fmt.Errorf("%w: trade_state", ErrMissingField)
	}
	if t.TradeState == TradeStateSuccess {
		if t.TransactionID == "" {
			return t, fmt.Errorf("%w: transaction_id", ErrMissingField)
		}
		if t.Amount.Total <= 0 {
			return t, fmt.Errorf("%w: amount.total must be positive", ErrMalformed)
		}
	}
	return t, nil
}

func decodeTxAmount(f jsonField, a *TransactionAmount) error {
	var s seen
	return jsonObject(f, func(f jsonField) error {
		var err error
		switch f.key {
		case "total":
			if err = s.mark(0, f.key); err == nil {
				a.Total, err = jsonInt(f)
			}
		case "payer_total":
			if err = s.mark(1, f.key); err == nil {
				a.PayerTotal, err = jsonInt(f)
			}
		case "currency":
			if err = s.mark(2, f.key); err == nil {
				a.Currency, err = jsonString(f)
			}
		case "payer_currency":
			if err = s.mark(3, f.key); err == nil {
				a.PayerCurrency, err = jsonString(f)
			}
		}
		return err
	})
}

// RefundNoticeAmount is the amount part of a refund notification.
type RefundNoticeAmount struct {
	Total       int64 `json:"total"`
	Refund      int64 `json:"refund"`
	PayerTotal  int64 `json:"payer_total"`
	PayerRefund int64 `json:"payer_refund"`
}

// RefundNotice is the resource of REFUND.* notifications.
type RefundNotice struct {
	// AppID is set by APIv2 refund notifications only (APIv3's name no
	// appid).
	AppID               string             `json:"appid,omitempty"`
	MchID               string             `json:"mchid"`
	OutTradeNo          string             `json:"out_trade_no"`
	TransactionID       string             `json:"transaction_id"`
	OutRefundNo         string             `json:"out_refund_no"`
	RefundID            string             `json:"refund_id"`
	RefundStatus        string             `json:"refund_status"`
	SuccessTime         string             `json:"success_time,omitempty"`
	UserReceivedAccount string             `json:"user_received_account"`
	Amount              RefundNoticeAmount `json:"amount"`
}

// DecodeRefundNotice decodes a refund resource and requires mchid,
// out_trade_no, out_refund_no, refund_id and refund_status (CLOSE is
// normalised to CLOSED).
func DecodeRefundNotice(doc []byte) (RefundNotice, error) {
	var r RefundNotice
	var s seen
	err := forEachMember(string(doc), func(f jsonField) error {
		var err error
		switch f.key {
		case "mchid":
			if err = s.mark(0, f.key); err == nil {
				r.MchID, err = jsonString(f)
			}
		case "out_trade_no":
			if err = s.mark(1, f.key); err == nil {
				r.OutTradeNo, err = jsonString(f)
			}
		case "transaction_id":
			if err = s.mark(2, f.key); err == nil {
				r.TransactionID, err = jsonString(f)
			}
		case "out_refund_no":
			if err = s.mark(3, f.key); err == nil {
				r.OutRefundNo, err = jsonString(f)
			}
		case "refund_id":
			if err = s.mark(4, f.key); err == nil {
				r.RefundID, err = jsonString(f)
			}
		case "refund_status":
			if err = s.mark(5, f.key); err == nil {
				r.RefundStatus, err = jsonString(f)
			}
		case "success_time":
			if err = s.mark(6, f.key); err == nil {
				r.SuccessTime, err = jsonString(f)
			}
		case "user_received_account":
			if err = s.mark(7, f.key); err == nil {
				r.UserReceivedAccount, err = jsonString(f)
			}
		case "amount":
			if err = s.mark(8, f.key); err == nil {
				var as seen
				err = jsonObject(f, func(f jsonField) error {
					var err error
					switch f.key {
					case "total":
						if err = as.mark(0, f.key); err == nil {
							r.Amount.Total, err = jsonInt(f)
						}
					case "refund":
						if err = as.mark(1, f.key); err == nil {
							r.Amount.Refund, err = jsonInt(f)
						}
					case "payer_total":
						if err = as.mark(2, f.key); err == nil {
							r.Amount.PayerTotal, err = jsonInt(f)
						}
					case "payer_refund":
						if err = as.mark(3, f.key); err == nil {
							r.Amount.PayerRefund, err = jsonInt(f)
						}
					}
					return err
				})
			}
		}
		return err
	})
	if err != nil {
		return RefundNotice{}, err
	}
	r.RefundStatus = NormalizeRefundStatus(r.RefundStatus)
	switch {
	case r.MchID == "":
		return r, fmt.Errorf("%w: mchid", ErrMissingField)
	case r.OutTradeNo == "":
		return r, fmt.Errorf("%w: out_trade_no", ErrMissingField)
	case r.OutRefundNo == "":
		return r, fmt.Errorf("%w: out_refund_no", ErrMissingField)
	case r.RefundID == "":
		return r, fmt.Errorf("%w: refund_id", ErrMissingField)
	case r.RefundStatus == "":
		return r, fmt.Errorf("%w: refund_status", ErrMissingField)
	}
	return r, nil
}

// RefundAmount is the amount of a refund request.
type RefundAmount struct {
	Refund   int64  `json:"refund"`
	Total    int64  `json:"total"`
	Currency string `json:"currency,omitempty"` // CNY when empty
}

// RefundRequest is the body of POST /v3/refund/domestic/refunds. Give
// TransactionID or OutTradeNo. Reusing OutRefundNo makes a retry refund once.
type RefundRequest struct {
	TransactionID string       `json:"transaction_id,omitempty"`
	OutTradeNo    string       `json:"out_trade_no,omitempty"`
	OutRefundNo   string       `json:"out_refund_no"`
	Reason        string       `json:"reason,omitempty"`
	NotifyURL     string       `json:"notify_url,omitempty"`
	FundsAccount  string       `json:"funds_account,omitempty"`
	Amount        RefundAmount `json:"amount"`
}

// RefundDetailAmount is the amount part of a refund answer.
type RefundDetailAmount struct {
	Total            int64  `json:"total"`
	Refund           int64  `json:"refund"`
	PayerTotal       int64  `json:"payer_total"`
	PayerRefund      int64  `json:"payer_refund"`
	SettlementRefund int64  `json:"settlement_refund"`
	SettlementTotal  int64  `json:"settlement_total"`
	DiscountRefund   int64  `json:"discount_refund"`
	Currency         string `json:"currency"`
}

// Refund is the answer of the refund create and query APIs.
type Refund struct {
	RefundID            string             `json:"refund_id"`
	OutRefundNo         string             `json:"out_refund_no"`
	TransactionID       string             `json:"transaction_id"`
	OutTradeNo          string             `json:"out_trade_no"`
	Channel             string             `json:"channel"`
	UserReceivedAccount string             `json:"user_received_account"`
	SuccessTime         string             `json:"success_time,omitempty"`
	CreateTime          string             `json:"create_time"`
	Status              string             `json:"status"`
	FundsAccount        string             `json:"funds_account,omitempty"`
	Amount              RefundDetailAmount `json:"amount"`
}

// Ways to complete an ABNORMAL refund (AbnormalRefundRequest.Type).
const (
	// AbnormalRefundUserBankCard pays the refund to the buyer's debit card
	// (BankType, BankAccount and RealName required).
	AbnormalRefundUserBankCard = "USER_BANK_CARD"
	// AbnormalRefundMerchantBankCard pays it to the merchant's bank account
	// (no bank fields).
	AbnormalRefundMerchantBankCard = "MERCHANT_BANK_CARD"
)

// AbnormalRefundRequest is the body of POST
// /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund, which
// completes a refund whose status is ABNORMAL (e.g. the buyer's card was
// closed) another way. Callers fill BankAccount and RealName in plain text;
// on the wire they are ciphertext (EncryptSensitive), and
// (*client.Client).ApplyAbnormalRefund encrypts them. String keeps both out
// of logs.
type AbnormalRefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`          // the refund's out_refund_no
	Type        string `json:"type"`                   // AbnormalRefundUserBankCard or AbnormalRefundMerchantBankCard
	BankType    string `json:"bank_type,omitempty"`    // the card's bank, e.g. ICBC_DEBIT (USER_BANK_CARD only)
	BankAccount string `json:"bank_account,omitempty"` // card number (USER_BANK_CARD only)
	RealName    string `json:"real_name,omitempty"`    // card holder's name (USER_BANK_CARD only)
}

// String describes the request without the bank account and name.
func (r AbnormalRefundRequest) String() string {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	return fmt.Sprintf("{OutRefundNo:%s Type:%s BankType:%s BankAccount:%s RealName:%s}",
		r.OutRefundNo, r.Type, r.BankType, redact(r.BankAccount), redact(r.RealName))
}

// GoString is String, so %#v redacts too.
func (r AbnormalRefundRequest) GoString() string { return r.String() }

// Certificate is one entry of GET /v3/certificates.
type Certificate struct {
	SerialNo           string   `json:"serial_no"`
	EffectiveTime      string   `json:"effective_time"`
	ExpireTime         string   `json:"expire_time"`
	EncryptCertificate Resource `json:"encrypt_certificate"`
}

// CertificatesResponse is the answer of GET /v3/certificates.
type CertificatesResponse struct {
	Data []Certificate `json:"data"`
}

// ErrorDetail is the optional detail of an APIv3 error answer.
type ErrorDetail struct {
	Field    string          `json:"field,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	Issue    string          `json:"issue,omitempty"`
	Location string          `json:"location,omitempty"`
}

// APIError is a non-2xx APIv3 answer: the HTTP status and WeChat's code,
// message and detail. Find it with errors.As.
type APIError struct {
	Status    int          `json:"-"`
	Code      string       `json:"code"`
	Message   string       `json:"message"`
	Detail    *ErrorDetail `json:"detail,omitempty"`
	RequestID string       `json:"-"`
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("wxpay: HTTP %d %s: %s", e.Status, printable(e.Code, 64), printable(e.Message, 256))
	if e.Detail != nil && e.Detail.Field != "" {
		s += " (field " + printable(e.Detail.Field, 128) + ")"
	}
	if e.RequestID != "" {
		s += " [request " + e.RequestID + "]"
	}
	return s
}

// printable bounds text that came from an answer (possibly unsigned) and
// replaces control characters, so it cannot forge log lines.
func printable(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// APIErrorCode returns WeChat's error code if err is or wraps an *APIError.
func APIErrorCode(err error) (string, bool) {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}

// Error codes used by the simulator and recognised by the server. Older
// tables spell some without underscores; NormalizeCode maps them.
const (
	CodeParamError         = "PARAM_ERROR"
	CodeInvalidRequest     = "INVALID_REQUEST"
	CodeSignError          = "SIGN_ERROR"
	CodeNoAuth             = "NO_AUTH"
	CodeOutTradeNoUsed     = "OUT_TRADE_NO_USED"
	CodeOrderNotExist      = "ORDER_NOT_EXIST"
	CodeOrderClosed        = "ORDER_CLOSED"
	CodeOrderPaid          = "ORDERPAID"
	CodeFrequencyLimited   = "FREQUENCY_LIMITED"
	CodeSystemError        = "SYSTEM_ERROR"
	CodeResourceNotExists  = "RESOURCE_NOT_EXISTS"
	CodeAppIDMchIDMismatch = "APPID_MCHID_NOT_MATCH"
	CodeMchNotExists       = "MCH_NOT_EXISTS"
	CodeNotEnough          = "NOT_ENOUGH"
)

// NormalizeCode maps the older spellings (NOAUTH, ORDERNOTEXIST, SYSTEMERROR,
// ...) to the APIv3 ones.
func NormalizeCode(code string) string {
	switch code {
	case "NOAUTH":
		return CodeNoAuth
	case "ORDERNOTEXIST":
		return CodeOrderNotExist
	case "SYSTEMERROR":
		return CodeSystemError
	case "RULELIMIT":
		return "RULE_LIMIT"
	case "NOTENOUGH":
		return CodeNotEnough
	case "ORDERCLOSED":
		return CodeOrderClosed
	}
	return code
}

// ValidOutTradeNo reports whether s is a valid out_trade_no: 6 to 32
// characters of [0-9A-Za-z_-|*].
func ValidOutTradeNo(s string) bool {
	return len(s) >= 6 && len(s) <= 32 && allIn(s, "_-|*")
}

// ValidOutRefundNo reports whether s is a valid out_refund_no: 1 to 64
// characters of [0-9A-Za-z_-|*@].
func ValidOutRefundNo(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && allIn(s, "_-|*@")
}

// ValidRefundID reports whether s can be a WeChat refund_id: 1 to 32
// characters of [0-9A-Za-z]. (The documentation gives string(32); every
// refund_id seen is decimal digits. The charset is not documented.)
func ValidRefundID(s string) bool {
	return len(s) >= 1 && len(s) <= 32 && allIn(s, "")
}

func allIn(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			continue
		}
		ok := false
		for j := 0; j < len(extra); j++ {
			if c == extra[j] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
