package wxpay

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// WeChat Pay's daily bills (对账单), APIv3:
//
//	GET /v3/bill/tradebill?bill_date=YYYY-MM-DD[&bill_type=ALL|SUCCESS|REFUND][&tar_type=GZIP]
//	GET /v3/bill/fundflowbill?bill_date=YYYY-MM-DD[&account_type=BASIC|OPERATION|FEES][&tar_type=GZIP]
//
// answer a signed BillInfo {"hash_type":"SHA1","hash_value","download_url"}.
// The file itself is fetched with a GET of download_url that carries an
// Authorization header like any request (signed over the download URL's path
// and query); that answer is NOT signed (no Wechatpay-* headers), so the
// file is trusted only once its SHA1 matches hash_value. The digest is of the
// original bill: after un-gzipping when tar_type=GZIP was asked for.
//
// A bill is for one day in Beijing time. WeChat generates the previous
// day's bills from about 10:00 Beijing time ("建议在次日上午10点后再申请"),
// keeps them for three months, answers 400 STATEMENT_CREATING while a bill
// is being generated and 400 NO_STATEMENT_EXIST when the day has no bill
// (no trade or no fund movement). download_url is valid for a short time
// (5 minutes in the current merchant documentation, 30 s in older copies).
//
// The file is UTF-8 CSV without quoting: a header row of column names, one
// row per trade (or fund movement) whose every field is prefixed with a
// backtick ("`") so that spreadsheets keep long numbers as text, then a
// summary header row and one summary row (backticks too). Amounts are yuan
// with two decimals; the fee (手续费) has five. This package parses them
// to integers exactly (fen, or thousandths of a fen for fees), never through
// floating point. The layouts are in bill_parse.go.
//
// Sources: PAY/doc/v3/merchant/4012556654 (申请交易账单), 4013071254 (FAQ:
// NO_STATEMENT_EXIST, STATEMENT_CREATING, unsigned download, GZIP);
// PAY/docs/partner/apis/partner-jsapi-payment/get-trade-bill.html;
// developer.work.weixin.qq.com/document/path/98115 (the file's four parts,
// the backtick); the APIv2 downloadbill/downloadfundflow pages as copied by
// SDKs; real bill samples in WxJava WxPayBillResultTest, an APIv2 dump in a
// public Java project, and the bill tests of an unofficial Go APIv3 SDK.

// BillType is a trade bill's bill_type.
type BillType string

// Trade bill types. WeChat also knows RECHARGE_REFUND and the *_SPECIAL
// types of personalised bills; this package does not parse those.
const (
	// BillTypeAll: every payment and refund of the day (不含充值退款订单).
	BillTypeAll BillType = "ALL"
	// BillTypeSuccess: the day's successful payments.
	BillTypeSuccess BillType = "SUCCESS"
	// BillTypeRefund: the day's refunds.
	BillTypeRefund BillType = "REFUND"
)

// Valid reports whether t is ALL, SUCCESS or REFUND.
func (t BillType) Valid() bool {
	return t == BillTypeAll || t == BillTypeSuccess || t == BillTypeRefund
}

// AccountType is a fund-flow bill's account_type.
type AccountType string

// Fund accounts of a fund-flow bill.
const (
	AccountBasic     AccountType = "BASIC"     // 基本账户 (the default)
	AccountOperation AccountType = "OPERATION" // 运营账户
	AccountFees      AccountType = "FEES"      // 手续费账户
)

// Valid reports whether a is BASIC, OPERATION or FEES.
func (a AccountType) Valid() bool {
	return a == AccountBasic || a == AccountOperation || a == AccountFees
}

// Protocol values of the bill APIs.
const (
	// HashTypeSHA1 is the only hash_type WeChat documents.
	HashTypeSHA1 = "SHA1"
	// TarTypeGzip asks for a gzip-compressed download (tar_type).
	TarTypeGzip = "GZIP"
	// BillDateLayout is bill_date's format (time package layout).
	BillDateLayout = "2006-01-02"
	// BillTimeLayout is the format of times inside a bill, Beijing time.
	BillTimeLayout = "2006-01-02 15:04:05"

	// CodeNoStatementExist: the day has no bill (no trade, or no movement
	// in the account): "请求的账单文件不存在". HTTP 400.
	CodeNoStatementExist = "NO_STATEMENT_EXIST"
	// CodeStatementCreating: the bill is still being generated ("账单生成中");
	// retry after 10:00 Beijing time, then every half hour. HTTP 400
	// (UNCONFIRMED: the FAQ gives the code, not the status).
	CodeStatementCreating = "STATEMENT_CREATING"
)

// Directions of a fund-flow row (收支类型).
const (
	FundIncome  = "收入"
	FundExpense = "支出"
)

// BillLocation is Beijing time (UTC+8, no daylight saving), the zone of
// bill dates and of every time inside a bill.
var BillLocation = time.FixedZone("CST", 8*3600)

// ParseBillDate parses a bill_date (YYYY-MM-DD, a real calendar date) and
// returns the start of that day in Beijing time. The error wraps
// ErrMalformed.
func ParseBillDate(s string) (time.Time, error) {
	if len(s) != len(BillDateLayout) {
		return time.Time{}, fmt.Errorf("%w: bill_date %.20q: want YYYY-MM-DD", ErrMalformed, s)
	}
	t, ok := parseBillClock(s+" 00:00:00", false)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: bill_date %.20q: want YYYY-MM-DD", ErrMalformed, s)
	}
	return t, nil
}

// BillDate returns the bill_date of the Beijing day t falls on.
func BillDate(t time.Time) string { return t.In(BillLocation).Format(BillDateLayout) }

// BillInfo is the answer of GET /v3/bill/tradebill and
// /v3/bill/fundflowbill: where to download the bill and its digest.
type BillInfo struct {
	// HashType is the digest algorithm: HashTypeSHA1.
	HashType string `json:"hash_type"`
	// HashValue is the hex digest of the original (uncompressed) bill.
	HashValue string `json:"hash_value"`
	// DownloadURL is where to GET the file, with an Authorization header;
	// valid for a few minutes.
	DownloadURL string `json:"download_url"`
	// Gzip records that the request asked for tar_type=GZIP, so the
	// download is gzip-compressed. It is not part of WeChat's answer.
	Gzip bool `json:"-"`
}

// maxDownloadURL bounds download_url (WeChat documents string(2048)).
const maxDownloadURL = 2048

// Check validates a decoded BillInfo: hash_type SHA1, hash_value 40
// hexadecimal digits, download_url an absolute http(s) URL with a host and
// a path of at most 2048 bytes. The error wraps ErrMissingField or
// ErrMalformed and never quotes the URL (its token is a credential).
func (b *BillInfo) Check() error {
	switch {
	case b.HashType == "":
		return fmt.Errorf("%w: hash_type", ErrMissingField)
	case b.HashValue == "":
		return fmt.Errorf("%w: hash_value", ErrMissingField)
	case b.DownloadURL == "":
		return fmt.Errorf("%w: download_url", ErrMissingField)
	case !strings.EqualFold(b.HashType, HashTypeSHA1):
		return fmt.Errorf("%w: hash_type %.16q is not SHA1", ErrMalformed, b.HashType)
	case !isHex(b.HashValue, 40):
		return fmt.Errorf("%w: hash_value is not 40 hexadecimal digits", ErrMalformed)
	case len(b.DownloadURL) > maxDownloadURL:
		return fmt.Errorf("%w: download_url longer than %d bytes", ErrMalformed, maxDownloadURL)
	}
	u, err := url.Parse(b.DownloadURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" ||
		u.User != nil || u.Fragment != "" || !strings.HasPrefix(u.EscapedPath(), "/") {
		return fmt.Errorf("%w: download_url is not an absolute http(s) URL", ErrMalformed)
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// TradeBillRow is one row of a trade bill: a payment (TradeState SUCCESS)
// or a refund (TradeState REFUND), or a revoked payment (REVOKED). Amounts
// are fen unless named otherwise. Columns absent from the bill's layout are
// zero: a SUCCESS bill has no refund columns, and only a REFUND bill has
// the refund times. Strings are substrings of one copy of the row's line, so
// a row (or any of its strings) may be kept after parsing moves on.
type TradeBillRow struct {
	TradeTime     time.Time // 交易时间, Beijing time; on a refund row, the payment's time
	AppID         string    // 公众账号ID
	MchID         string    // 商户号
	SubMchID      string    // 特约商户号; "" for a direct merchant (the bill writes 0)
	DeviceInfo    string    // 设备号
	TransactionID string    // 微信订单号
	OutTradeNo    string    // 商户订单号
	OpenID        string    // 用户标识
	TradeType     string    // 交易类型: JSAPI, NATIVE, APP, MWEB, MICROPAY, FACEPAY
	TradeState    string    // 交易状态: SUCCESS, REFUND, REVOKED
	BankType      string    // 付款银行, e.g. OTHERS, CFT, ICBC_DEBIT
	Currency      string    // 货币种类: CNY

	SettlementTotal int64 // 应结订单金额: the order total less free coupons; 0 on refund rows
	Coupon          int64 // 代金券金额

	RefundApplyTime   time.Time // 退款申请时间 (REFUND bills only)
	RefundSuccessTime time.Time // 退款成功时间 (REFUND bills only; zero while not successful)

	RefundID             string // 微信退款单号; "" on payment rows (the bill writes 0)
	OutRefundNo          string // 商户退款单号; "" on payment rows (the bill writes 0)
	Refund               int64  // 退款金额
	RechargeCouponRefund int64  // 充值券退款金额
	RefundType           string // 退款类型, e.g. ORIGINAL
	RefundStatus         string // 退款状态, e.g. SUCCESS, PROCESSING (the set is UNCONFIRMED)

	Description string // 商品名称
	Attach      string // 商户数据包

	// FeeMilliFen is 手续费 in thousandths of a fen (WeChat writes five
	// decimals of a yuan); negative on refund rows (the fee given back).
	FeeMilliFen int64
	// RatePPM is 费率 in millionths: 0.60% is 6000.
	RatePPM int64

	Total           int64  // 订单金额; 0 on refund rows
	RefundRequested int64  // 申请退款金额
	RateNote        string // 费率备注
}

// TradeBillSummary is a trade bill's summary row. Amounts are fen, except
// FeeMilliFen.
type TradeBillSummary struct {
	Count                int64 // 总交易单数: the number of rows
	SettlementTotal      int64 // 应结订单总金额
	Refund               int64 // 退款总金额
	RechargeCouponRefund int64 // 充值券退款总金额
	FeeMilliFen          int64 // 手续费总金额
	Total                int64 // 订单总金额
	RefundRequested      int64 // 申请退款总金额
}

// Add counts r into s: one more row, and each amount column summed (the
// relation every sample bill satisfies; WeChat does not document the
// formulas, UNCONFIRMED). It fails, leaving s unchanged, wrapping
// ErrBillMalformed when a sum would overflow.
func (s *TradeBillSummary) Add(r *TradeBillRow) error {
	n := *s
	ok := addTo(&n.Count, 1) && addTo(&n.SettlementTotal, r.SettlementTotal) && addTo(&n.Refund, r.Refund) &&
		addTo(&n.RechargeCouponRefund, r.RechargeCouponRefund) && addTo(&n.FeeMilliFen, r.FeeMilliFen) &&
		addTo(&n.Total, r.Total) && addTo(&n.RefundRequested, r.RefundRequested)
	if !ok {
		return fmt.Errorf("%w: a summary amount overflows", ErrBillMalformed)
	}
	*s = n
	return nil
}

// FundFlowRow is one row of a fund-flow bill: a movement of money in the
// account. Amounts are fen. Strings share one copy of the row's line.
type FundFlowRow struct {
	Time         time.Time // 记账时间, Beijing time
	BusinessID   string    // 微信支付业务单号 (e.g. the transaction_id or refund_id)
	FlowID       string    // 资金流水单号
	BusinessName string    // 业务名称, e.g. 交易, 退款
	BusinessType string    // 业务类型, e.g. 交易, 退款, 扣除交易手续费
	Direction    string    // 收支类型: FundIncome (收入) or FundExpense (支出)
	Amount       int64     // 收支金额(元), never negative; Direction gives the sign
	Balance      int64     // 账户结余(元) after the movement
	Applicant    string    // 资金变更提交申请人
	Note         string    // 备注
	VoucherID    string    // 业务凭证号 (e.g. the out_trade_no or out_refund_no)
}

// FundFlowSummary is a fund-flow bill's summary row (amounts in fen).
type FundFlowSummary struct {
	Count        int64 // 资金流水总笔数
	IncomeCount  int64 // 收入笔数
	Income       int64 // 收入金额
	ExpenseCount int64 // 支出笔数
	Expense      int64 // 支出金额
}

// Add counts r into s by its Direction. It fails, leaving s unchanged,
// wrapping ErrBillMalformed for another direction or an overflow.
func (s *FundFlowSummary) Add(r *FundFlowRow) error {
	n := *s
	ok := addTo(&n.Count, 1)
	switch r.Direction {
	case FundIncome:
		ok = ok && addTo(&n.IncomeCount, 1) && addTo(&n.Income, r.Amount)
	case FundExpense:
		ok = ok && addTo(&n.ExpenseCount, 1) && addTo(&n.Expense, r.Amount)
	default:
		return fmt.Errorf("%w: 收支类型 is neither %s nor %s", ErrBillMalformed, FundIncome, FundExpense)
	}
	if !ok {
		return fmt.Errorf("%w: a summary amount overflows", ErrBillMalformed)
	}
	*s = n
	return nil
}

// addTo adds v to *p unless that overflows.
func addTo(p *int64, v int64) bool {
	s := *p + v
	if (v > 0 && s < *p) || (v < 0 && s > *p) {
		return false
	}
	*p = s
	return true
}
