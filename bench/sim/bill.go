package sim

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // WeChat's bill digest
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Daily bills (对账单) from the ledger: GET /v3/bill/tradebill and
// /v3/bill/fundflowbill answer a signed {"hash_type","hash_value",
// "download_url"}, and GET /v3/billdownload/file?token=… (on the simulator,
// authenticated like any request, its answer unsigned) streams the file in
// the layout of wxpay/bill_parse.go, plain or gzip.
//
// A day's bills are generated once, at the first request after the day has
// ended and Config.BillReadyAfter has passed (WeChat: about 10:00 Beijing
// time the next day), and frozen: later ledger changes do not alter them, so
// the digest and the file always agree. POST /sim/v1/bills/generate freezes
// a day's bills at once (today's too), and POST /sim/v1/bills/synthetic
// replaces a day's trade bills with a generated one of any size, rendered
// row by row on every download and never held in memory.
//
// What goes into a day's bills (the simulator's model; WeChat documents the
// columns, not these rules: UNCONFIRMED):
//   - a payment row for every order paid that day (success time), at its
//     success time, with 手续费 = round-half-up(total × 0.60%) in fen
//     (written with five decimals, as WeChat's are), 费率 0.60%, 付款银行
//     OTHERS, 交易类型 JSAPI, 特约商户号 0;
//   - a refund row for every refund requested that day, at its payment's
//     time, with 应结订单金额 and 订单金额 0, 退款金额 and 申请退款金额 the
//     refund's amount, 退款状态 its status when the bill was generated
//     (SUCCESS, PROCESSING, REFUNDCLOSE for CLOSED, CHANGE for ABNORMAL),
//     退款类型 ORIGINAL and 手续费 minus round-half-up(amount × 0.60%);
//   - ALL holds both, payments first (by time, out_trade_no), then refunds
//     (by time, out_refund_no); SUCCESS and REFUND hold one kind each;
//   - the BASIC account's fund flow: per payment 交易/交易 收入 total and
//     交易/扣除交易手续费 支出 fee, per refund that succeeded that day
//     退款/退款 支出 amount, 账户结余 running from the movements of earlier
//     days; OPERATION and FEES never have movements;
//   - a day without a payment or refund has no trade bill (400
//     NO_STATEMENT_EXIST); a SUCCESS or REFUND bill without rows of its kind
//     on a day that has the other kind is served empty (header and a zero
//     summary; UNCONFIRMED whether WeChat answers NO_STATEMENT_EXIST).
//
// Refusals: a malformed bill_date, bill_type, account_type or tar_type is
// 400 PARAM_ERROR; a date more than three calendar months back, today or a
// future date is 400 INVALID_REQUEST (UNCONFIRMED: WeChat's code and
// status); a day not ready yet is 400 STATEMENT_CREATING; RECHARGE_REFUND
// and the *_SPECIAL types are 400 NO_STATEMENT_EXIST. A download token is
// valid for BillDownloadTTL; an unknown or expired one is 404
// RESOURCE_NOT_EXISTS (UNCONFIRMED).

// Bill API paths.
const (
	pathTradeBill         = "/v3/bill/tradebill"
	pathFundFlowBill      = "/v3/bill/fundflowbill"
	pathBillDownload      = "/v3/billdownload/file"
	pathSimBillsSynthetic = "/sim/v1/bills/synthetic"
	pathSimBillsGenerate  = "/sim/v1/bills/generate"
)

// Bill settings.
const (
	// BillFeeRatePPM is the fee rate the simulator charges: 0.60%.
	BillFeeRatePPM = 6000
	// BillDownloadTTL is how long a download_url stays valid (WeChat's
	// current merchant documentation: 5 minutes).
	BillDownloadTTL = 5 * time.Minute
	// MaxSyntheticBillRows bounds POST /sim/v1/bills/synthetic.
	MaxSyntheticBillRows = 10_000_000
	// maxBillDays bounds the frozen days kept (three months and some).
	maxBillDays = 120
	// maxBillTokens bounds the download tokens kept.
	maxBillTokens = 10_000
)

// billKind is a downloadable bill of a day.
type billKind int

const (
	bkAll billKind = iota
	bkSuccess
	bkRefund
	bkFund
	numBillKinds
)

var billKindTypes = [numBillKinds]wxpay.BillType{wxpay.BillTypeAll, wxpay.BillTypeSuccess, wxpay.BillTypeRefund, ""}

// billStore holds the frozen days and the download tokens. Lock order:
// billStore.mu, then a shard's mu (generation scans the ledger).
type billStore struct {
	mu     sync.Mutex
	days   map[string]*dayBill // by bill_date
	tokens map[string]*billToken
}

func newBillStore() *billStore {
	return &billStore{days: map[string]*dayBill{}, tokens: map[string]*billToken{}}
}

// billToken is a download_url's token.
type billToken struct {
	day     *dayBill
	kind    billKind
	gzip    bool
	expires time.Time
}

// dayBill is one day's bills, frozen. Its slices are never modified after
// generation; the orders and refunds they point to are read only in their
// fields that never change once set (ids, amounts, times, texts).
type dayBill struct {
	date    string
	day     time.Time // start of the day, Beijing time
	mchID   string
	pays    []*order   // paid that day, sorted
	refunds []billRef  // requested that day, sorted
	fund    []billMove // the BASIC account's movements, sorted
	opening int64      // BASIC balance at the start of the day
	syn     *synthetic // set for a synthetic day (pays, refunds, fund unused)
	digests [numBillKinds]billDigest
}

// billRef is a refund as it stood when its day was frozen.
type billRef struct {
	rf      *refund
	status  string
	success time.Time
}

// billMove is a movement of the BASIC account.
type billMove struct {
	at     time.Time
	o      *order
	rf     *refund // nil for a payment and its fee
	fee    bool
	amount int64
}

type billDigest struct {
	once sync.Once
	hex  string
	size int64
	err  error
}

// synthetic describes a generated day of rows trade rows: rows − rows/10
// payments, then rows/10 refunds of half a payment each (see
// SyntheticBill).
type synthetic struct {
	rows, pays, refunds, fundRows int
	ymd                           string
}

// BillCounts is the answer of the bill control endpoints: what a day's
// frozen bills hold.
type BillCounts struct {
	Date     string `json:"date"`
	Payments int    `json:"payments"`
	Refunds  int    `json:"refunds"`
	FundRows int    `json:"fund_rows"`
}

func (d *dayBill) counts() BillCounts {
	if d.syn != nil {
		return BillCounts{Date: d.date, Payments: d.syn.pays, Refunds: d.syn.refunds, FundRows: d.fundRows()}
	}
	return BillCounts{Date: d.date, Payments: len(d.pays), Refunds: len(d.refunds), FundRows: d.fundRows()}
}

// rows returns how many rows the bill of kind k has.
func (d *dayBill) rows(k billKind) int {
	c := d.counts()
	switch k {
	case bkAll:
		return c.Payments + c.Refunds
	case bkSuccess:
		return c.Payments
	case bkRefund:
		return c.Refunds
	}
	return c.FundRows
}

func (d *dayBill) fundRows() int {
	if d.syn != nil {
		return d.syn.fundRows
	}
	return len(d.fund)
}

// billFee is the fee of amount fen: round-half-up(amount × 0.60%).
func billFee(amount int64) int64 { return (amount*BillFeeRatePPM + 500_000) / 1_000_000 }

// refundBillStatus maps a refund status to the bill's 退款状态
// (UNCONFIRMED: APIv2's refund query values, as the bill is APIv2's format).
func refundBillStatus(s string) string {
	switch s {
	case wxpay.RefundStatusClosed:
		return "REFUNDCLOSE"
	case wxpay.RefundStatusAbnormal:
		return "CHANGE"
	}
	return s
}

// dayOf returns the start of t's day in Beijing time.
func dayOf(t time.Time) time.Time {
	y, m, d := t.In(beijing).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, beijing)
}

// billReady is when date's bills can be generated.
func (s *Server) billReady(day time.Time) time.Time {
	return day.AddDate(0, 0, 1).Add(s.cfg.billReadyAfter())
}

// billDay returns the frozen bills of date, generating them if the day is
// ready, or WeChat's refusal.
func (s *Server) billDay(date string, now time.Time) (*dayBill, *apiError) {
	day, err := wxpay.ParseBillDate(date)
	if err != nil {
		e := paramError("/bill_date", date, "格式须为YYYY-MM-DD")
		e.detail.Location = "query"
		return nil, e
	}
	today := dayOf(now)
	if day.Before(today.AddDate(0, -3, 0)) {
		return nil, newErr(400, wxpay.CodeInvalidRequest, "仅支持三个月内的账单下载申请")
	}
	b := s.bills
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.days[date]; d != nil {
		return d, nil
	}
	if !day.Before(today) {
		return nil, newErr(400, wxpay.CodeInvalidRequest, "账单日期须早于今日")
	}
	if now.Before(s.billReady(day)) {
		return nil, newErr(400, wxpay.CodeStatementCreating, "账单生成中")
	}
	d := s.freeze(date, day, now)
	b.put(d)
	s.stats.billsGenerated.Add(1)
	return d, nil
}

// put stores d, dropping the earliest day beyond maxBillDays. Caller holds
// b.mu.
func (b *billStore) put(d *dayBill) {
	b.days[d.date] = d
	if len(b.days) <= maxBillDays {
		return
	}
	first := ""
	for k := range b.days {
		if first == "" || k < first {
			first = k
		}
	}
	delete(b.days, first)
}

// freeze scans the ledger for day's bills as they stand at now. Caller
// holds s.bills.mu; it takes one shard at a time.
func (s *Server) freeze(date string, day, now time.Time) *dayBill {
	end := day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(day) && t.Before(end) && !t.After(now) }
	d := &dayBill{date: date, day: day, mchID: s.id.MchID}
	st := s.store
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for _, o := range sh.orders {
			if o.txnID == "" || o.mchID != s.id.MchID {
				continue
			}
			if o.successTime.Before(day) {
				d.opening += o.total - billFee(o.total)
			}
			if in(o.successTime) {
				d.pays = append(d.pays, o)
				d.fund = append(d.fund, billMove{at: o.successTime, o: o, amount: o.total})
				if fee := billFee(o.total); fee > 0 {
					d.fund = append(d.fund, billMove{at: o.successTime, o: o, fee: true, amount: fee})
				}
			}
			for _, rf := range o.refunds {
				if in(rf.created) {
					d.refunds = append(d.refunds, billRef{rf: rf, status: rf.status, success: rf.success})
				}
				if rf.status != wxpay.RefundStatusSuccess {
					continue
				}
				if rf.success.Before(day) {
					d.opening -= rf.amount
				} else if in(rf.success) {
					d.fund = append(d.fund, billMove{at: rf.success, o: o, rf: rf, amount: rf.amount})
				}
			}
		}
		sh.mu.Unlock()
	}
	sort.Slice(d.pays, func(i, j int) bool {
		a, b := d.pays[i], d.pays[j]
		if !a.successTime.Equal(b.successTime) {
			return a.successTime.Before(b.successTime)
		}
		return a.outTradeNo < b.outTradeNo
	})
	sort.Slice(d.refunds, func(i, j int) bool {
		a, b := d.refunds[i].rf, d.refunds[j].rf
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		return a.outRefundNo < b.outRefundNo
	})
	sort.SliceStable(d.fund, func(i, j int) bool {
		a, b := d.fund[i], d.fund[j]
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		ka, kb := a.key(), b.key()
		return ka < kb
	})
	return d
}

// key orders movements of the same second: by id, a payment before its fee.
func (m billMove) key() string {
	if m.rf != nil {
		return "2" + m.rf.outRefundNo
	}
	if m.fee {
		return "1" + m.o.outTradeNo + "1"
	}
	return "1" + m.o.outTradeNo + "0"
}

// GenerateBill freezes date's bills from the ledger as it stands now,
// replacing any frozen before, whether or not the day has ended (the
// control API's POST /sim/v1/bills/generate).
func (s *Server) GenerateBill(date string) (BillCounts, error) {
	day, err := wxpay.ParseBillDate(date)
	if err != nil {
		return BillCounts{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	b := s.bills
	b.mu.Lock()
	defer b.mu.Unlock()
	d := s.freeze(date, day, s.clock.Now())
	b.put(d)
	s.stats.billsGenerated.Add(1)
	return d.counts(), nil
}

// SyntheticBill replaces date's trade bills with a generated bill of rows
// rows (1 to MaxSyntheticBillRows): rows − rows/10 payments of 1.00 to
// 99.99 yuan spread over the day, then rows/10 refunds of half a payment.
// The rows are computed while a download streams; nothing but the digests
// is kept. The fund-flow bill of the day follows the same rows.
func (s *Server) SyntheticBill(date string, rows int) (BillCounts, error) {
	day, err := wxpay.ParseBillDate(date)
	if err != nil {
		return BillCounts{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if rows < 1 || rows > MaxSyntheticBillRows {
		return BillCounts{}, fmt.Errorf("%w: rows %d: want 1 to %d", ErrConfig, rows, MaxSyntheticBillRows)
	}
	syn := &synthetic{rows: rows, refunds: rows / 10, ymd: day.Format("20060102")}
	syn.pays = rows - syn.refunds
	syn.fundRows = syn.refunds
	for i := range syn.pays {
		syn.fundRows++
		if billFee(syn.total(i)) > 0 {
			syn.fundRows++
		}
	}
	d := &dayBill{date: date, day: day, mchID: s.id.MchID, syn: syn}
	b := s.bills
	b.mu.Lock()
	b.put(d)
	b.mu.Unlock()
	s.stats.billsSynthetic.Add(1)
	return d.counts(), nil
}

// Synthetic rows: payment i at day + i × (86400 s / pays), refund j of
// payment 9j mod pays.
func (y *synthetic) total(i int) int64  { return 100 + int64(i%9900) }
func (y *synthetic) refund(j int) int64 { return max(1, y.total(y.refunded(j))/2) }
func (y *synthetic) refunded(j int) int { return (9 * j) % y.pays }
func (y *synthetic) at(day time.Time, i int) time.Time {
	return day.Add(time.Duration(int64(i)*86400/int64(y.pays)) * time.Second)
}

// billRowBuf holds the strings a synthetic row is built from.
type billRowBuf struct {
	b []byte
}

// id appends prefix + ymd + n zero-padded to width digits and returns it
// as a string (one allocation).
func (rb *billRowBuf) id(prefix, ymd string, n int, width int) string {
	b := append(rb.b[:0], prefix...)
	b = append(b, ymd...)
	b = appendDigits(b, uint64(n), width)
	rb.b = b
	return string(b)
}

// eachTrade calls fn with every row of the trade bill of kind k, in order;
// row is reused.
func (d *dayBill) eachTrade(k billKind, fn func(*wxpay.TradeBillRow) error) error {
	var row wxpay.TradeBillRow
	if d.syn != nil {
		return d.eachSynthetic(k, &row, fn)
	}
	if k != bkRefund {
		for _, o := range d.pays {
			paymentRow(&row, o)
			if err := fn(&row); err != nil {
				return err
			}
		}
	}
	if k != bkSuccess {
		for _, r := range d.refunds {
			refundRow(&row, r)
			if err := fn(&row); err != nil {
				return err
			}
		}
	}
	return nil
}

func paymentRow(row *wxpay.TradeBillRow, o *order) {
	fee := billFee(o.total)
	*row = wxpay.TradeBillRow{
		TradeTime: o.successTime, AppID: o.appID, MchID: o.mchID, TransactionID: o.txnID, OutTradeNo: o.outTradeNo,
		OpenID: o.openID, TradeType: "JSAPI", TradeState: wxpay.TradeStateSuccess, BankType: "OTHERS",
		Currency: o.currency, SettlementTotal: o.total, Description: o.desc, Attach: o.attach,
		FeeMilliFen: fee * 1000, RatePPM: BillFeeRatePPM, Total: o.total,
	}
}

func refundRow(row *wxpay.TradeBillRow, r billRef) {
	rf, o := r.rf, r.rf.o
	*row = wxpay.TradeBillRow{
		TradeTime: o.successTime, AppID: o.appID, MchID: o.mchID, TransactionID: o.txnID, OutTradeNo: o.outTradeNo,
		OpenID: o.openID, TradeType: "JSAPI", TradeState: wxpay.TradeStateRefund, BankType: "OTHERS",
		Currency: o.currency, RefundApplyTime: rf.created, RefundID: rf.refundID, OutRefundNo: rf.outRefundNo,
		Refund: rf.amount, RefundType: "ORIGINAL", RefundStatus: refundBillStatus(r.status),
		Description: o.desc, Attach: o.attach, FeeMilliFen: -billFee(rf.amount) * 1000, RatePPM: BillFeeRatePPM,
		RefundRequested: rf.amount,
	}
	if r.status == wxpay.RefundStatusSuccess {
		row.RefundSuccessTime = r.success
	}
}

func (d *dayBill) eachSynthetic(k billKind, row *wxpay.TradeBillRow, fn func(*wxpay.TradeBillRow) error) error {
	y := d.syn
	var rb billRowBuf
	pay := func(i int) {
		total := y.total(i)
		*row = wxpay.TradeBillRow{
			TradeTime: y.at(d.day, i), AppID: DefaultAppID, MchID: d.mchID,
			TransactionID: rb.id("4200", y.ymd, i, 16), OutTradeNo: rb.id("SYN", y.ymd, i, 10),
			OpenID: "oSynthetic" + strconv.Itoa(i%1000), TradeType: "JSAPI", TradeState: wxpay.TradeStateSuccess,
			BankType: "OTHERS", Currency: "CNY", SettlementTotal: total, Description: "synthetic",
			FeeMilliFen: billFee(total) * 1000, RatePPM: BillFeeRatePPM, Total: total,
		}
	}
	if k != bkRefund {
		for i := range y.pays {
			pay(i)
			if err := fn(row); err != nil {
				return err
			}
		}
	}
	if k != bkSuccess {
		for j := range y.refunds {
			i := y.refunded(j)
			pay(i)
			amount := y.refund(j)
			t := row.TradeTime
			row.TradeState, row.SettlementTotal, row.Total = wxpay.TradeStateRefund, 0, 0
			row.RefundApplyTime, row.RefundSuccessTime = t.Add(time.Second), t.Add(3*time.Second)
			row.RefundID, row.OutRefundNo = rb.id("50300", y.ymd, j, 16), rb.id("SYNR", y.ymd, j, 10)
			row.Refund, row.RefundRequested, row.RefundType, row.RefundStatus = amount, amount, "ORIGINAL", wxpay.RefundStatusSuccess
			row.FeeMilliFen = -billFee(amount) * 1000
			if err := fn(row); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachFund calls fn with every row of the BASIC fund-flow bill, in order.
func (d *dayBill) eachFund(fn func(*wxpay.FundFlowRow) error) error {
	var row wxpay.FundFlowRow
	var rb billRowBuf
	ymd := d.day.Format("20060102")
	bal, seq := d.opening, 0
	emit := func(at time.Time, businessID, name, typ, dir string, amount int64, applicant, note, voucher string) error {
		if dir == wxpay.FundIncome {
			bal += amount
		} else {
			bal -= amount
		}
		seq++
		row = wxpay.FundFlowRow{Time: at, BusinessID: businessID, FlowID: rb.id(d.mchID, ymd, seq, 10),
			BusinessName: name, BusinessType: typ, Direction: dir, Amount: amount, Balance: bal,
			Applicant: applicant, Note: note, VoucherID: voucher}
		return fn(&row)
	}
	refundNote := func(amount int64) string {
		return "退款总金额" + yuan(amount) + "元;含手续费" + yuan(billFee(amount)) + "元"
	}
	if y := d.syn; y != nil {
		for i := range y.pays {
			at, total := y.at(d.day, i), y.total(i)
			txn, otn := rb.id("4200", y.ymd, i, 16), rb.id("SYN", y.ymd, i, 10)
			if err := emit(at, txn, "交易", "交易", wxpay.FundIncome, total, "system", "", otn); err != nil {
				return err
			}
			if fee := billFee(total); fee > 0 {
				if err := emit(at, txn, "交易", "扣除交易手续费", wxpay.FundExpense, fee, "system", "", otn); err != nil {
					return err
				}
			}
		}
		for j := range y.refunds {
			amount := y.refund(j)
			at := y.at(d.day, y.refunded(j)).Add(3 * time.Second)
			if err := emit(at, rb.id("50300", y.ymd, j, 16), "退款", "退款", wxpay.FundExpense, amount, d.mchID+"API",
				refundNote(amount), rb.id("SYNR", y.ymd, j, 10)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range d.fund {
		var err error
		switch {
		case m.rf != nil:
			err = emit(m.at, m.rf.refundID, "退款", "退款", wxpay.FundExpense, m.amount, d.mchID+"API",
				refundNote(m.amount), m.rf.outRefundNo)
		case m.fee:
			err = emit(m.at, m.o.txnID, "交易", "扣除交易手续费", wxpay.FundExpense, m.amount, "system", "", m.o.outTradeNo)
		default:
			err = emit(m.at, m.o.txnID, "交易", "交易", wxpay.FundIncome, m.amount, "system", "", m.o.outTradeNo)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// yuan formats fen as yuan with two decimals.
func yuan(fen int64) string {
	return strconv.FormatInt(fen/100, 10) + "." + string([]byte{byte('0' + fen%100/10), byte('0' + fen%10)})
}

// render writes the plain bill of kind k to w. corrupt changes one digit
// of the first row (the last digit of its time), which leaves the bill
// parseable and consistent with its summary: only the digest tells.
func (d *dayBill) render(w io.Writer, k billKind, corrupt bool) error {
	cw := &corruptWriter{w: w, at: -1}
	if k == bkFund {
		fw, err := wxpay.NewFundFlowBillWriter(cw)
		if err != nil {
			return err
		}
		if corrupt {
			cw.at = int64(fw.HeaderLen()) + 19
		}
		if err := d.eachFund(fw.Write); err != nil {
			return err
		}
		return fw.Close()
	}
	tw, err := wxpay.NewTradeBillWriter(cw, billKindTypes[k])
	if err != nil {
		return err
	}
	if corrupt {
		cw.at = int64(tw.HeaderLen()) + 19
	}
	if err := d.eachTrade(k, tw.Write); err != nil {
		return err
	}
	return tw.Close()
}

// corruptWriter changes the byte at offset at (a digit to the next digit,
// anything else by its lowest bit).
type corruptWriter struct {
	w     io.Writer
	at, n int64
}

func (c *corruptWriter) Write(p []byte) (int, error) {
	if i := c.at - c.n; c.at >= 0 && i >= 0 && i < int64(len(p)) {
		p = bytes.Clone(p)
		if b := p[i]; b >= '0' && b <= '9' {
			p[i] = '0' + (b-'0'+1)%10
		} else {
			p[i] ^= 1
		}
	}
	c.n += int64(len(p))
	return c.w.Write(p)
}

// digest returns the SHA1 (hex) and size of the plain bill of kind k,
// computed once by rendering it.
func (d *dayBill) digest(k billKind) (string, int64, error) {
	dg := &d.digests[k]
	dg.once.Do(func() {
		h := sha1.New() //nolint:gosec // WeChat's bill digest
		bw := bufio.NewWriterSize(h, 64<<10)
		cw := &countWriter{w: bw}
		if dg.err = d.render(cw, k, false); dg.err == nil {
			dg.err = bw.Flush()
		}
		dg.hex, dg.size = hex.EncodeToString(h.Sum(nil)), cw.n
	})
	return dg.hex, dg.size, dg.err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tradeBill serves GET /v3/bill/tradebill.
func (s *Server) tradeBill(r *v3req) (int, []byte, *apiError) {
	q := r.ctx.QueryArgs()
	k := bkAll
	switch t := string(q.Peek("bill_type")); t {
	case "", "ALL":
	case "SUCCESS":
		k = bkSuccess
	case "REFUND":
		k = bkRefund
	case "RECHARGE_REFUND", "ALL_SPECIAL", "SUC_SPECIAL", "REF_SPECIAL":
		return 0, nil, errNoStatement
	default:
		return 0, nil, queryParamError("/bill_type", t, "须为ALL、SUCCESS或REFUND")
	}
	return s.billInfo(r, k)
}

// fundFlowBill serves GET /v3/bill/fundflowbill.
func (s *Server) fundFlowBill(r *v3req) (int, []byte, *apiError) {
	switch a := string(r.ctx.QueryArgs().Peek("account_type")); a {
	case "", "BASIC":
	case "OPERATION", "FEES":
		if e := s.checkBillQuery(r); e != nil {
			return 0, nil, e
		}
		return 0, nil, errNoStatement
	default:
		return 0, nil, queryParamError("/account_type", a, "须为BASIC、OPERATION或FEES")
	}
	return s.billInfo(r, bkFund)
}

var errNoStatement = newErr(400, wxpay.CodeNoStatementExist, "请求的账单文件不存在")

func queryParamError(field, value, issue string) *apiError {
	e := paramError(field, value, issue)
	e.detail.Location = "query"
	return e
}

// checkBillQuery validates tar_type and bill_date's day.
func (s *Server) checkBillQuery(r *v3req) *apiError {
	if t := string(r.ctx.QueryArgs().Peek("tar_type")); t != "" && t != wxpay.TarTypeGzip {
		return queryParamError("/tar_type", t, "只支持GZIP")
	}
	_, e := s.billDay(string(r.ctx.QueryArgs().Peek("bill_date")), r.now)
	return e
}

// billInfo answers a bill request: the frozen day's digest and a fresh
// download_url on the host the merchant called.
func (s *Server) billInfo(r *v3req, k billKind) (int, []byte, *apiError) {
	q := r.ctx.QueryArgs()
	gz := false
	switch t := string(q.Peek("tar_type")); t {
	case "":
	case wxpay.TarTypeGzip:
		gz = true
	default:
		return 0, nil, queryParamError("/tar_type", t, "只支持GZIP")
	}
	d, e := s.billDay(string(q.Peek("bill_date")), r.now)
	if e != nil {
		return 0, nil, e
	}
	if d.rows(bkAll) == 0 && k != bkFund || k == bkFund && d.rows(bkFund) == 0 {
		return 0, nil, errNoStatement
	}
	sum, _, err := d.digest(k)
	if err != nil {
		s.log.Error("render bill", "date", d.date, "err", err)
		return 0, nil, errOverloaded
	}
	token := s.bills.newToken(d, k, gz, r.now)
	u := make([]byte, 0, 160)
	u = append(u, "http://"...)
	u = append(u, r.ctx.Host()...)
	u = append(u, pathBillDownload+"?token="...)
	u = append(u, token...)
	if gz {
		u = append(u, "&tartype=gzip"...)
	}
	ob := newObj(make([]byte, 0, 256))
	ob.str("hash_type", wxpay.HashTypeSHA1)
	ob.str("hash_value", sum)
	ob.str("download_url", string(u))
	return 200, ob.done(), nil
}

// newToken issues a download token, dropping expired ones and, beyond
// maxBillTokens, the one expiring first.
func (b *billStore) newToken(d *dayBill, k billKind, gz bool, now time.Time) string {
	token := randAlnum(48)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.tokens) >= maxBillTokens {
		first := ""
		for t, bt := range b.tokens {
			if !now.Before(bt.expires) {
				delete(b.tokens, t)
			} else if first == "" || bt.expires.Before(b.tokens[first].expires) {
				first = t
			}
		}
		if len(b.tokens) >= maxBillTokens {
			delete(b.tokens, first)
		}
	}
	b.tokens[token] = &billToken{day: d, kind: k, gzip: gz, expires: now.Add(BillDownloadTTL)}
	return token
}

func (b *billStore) token(t string, now time.Time) *billToken {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.tokens[t]
	if bt != nil && !now.Before(bt.expires) {
		delete(b.tokens, t)
		return nil
	}
	return bt
}

var errNoDownload = newErr(404, wxpay.CodeResourceNotExists, "账单下载链接不存在或已过期")

// billDownload serves GET /v3/billdownload/file?token=…: authenticated
// like any APIv3 request, faults drawn as for the bill_download endpoint,
// and the file written unsigned (WeChat signs no download), streamed.
func (s *Server) billDownload(ctx *fasthttp.RequestCtx) {
	s.stats.requests[epBillDownload].Add(1)
	hint := string(ctx.Request.Header.Peek(wxpay.HeaderSerial))
	if string(ctx.Method()) != fasthttp.MethodGet {
		s.finish(ctx, 0, nil, errMethod, hint)
		return
	}
	r := &v3req{ctx: ctx, now: s.clock.Now()}
	if e := s.authenticate(r); e != nil {
		s.finish(ctx, 0, nil, e, hint)
		return
	}
	f := s.drawFault(fpBillDownload)
	if f.noEffect() {
		s.v3Fault(ctx, f, hint)
		return
	}
	bt := s.bills.token(string(ctx.QueryArgs().Peek("token")), r.now)
	if bt == nil {
		s.finish(ctx, 0, nil, errNoDownload, hint)
		return
	}
	s.latency()
	switch f {
	case afSlow:
		s.slowWait()
	case afLost:
		if s.chance(0.5) {
			s.writeSigned(ctx, errInjectedSystem.status, errInjectedSystem.body(), hint)
		} else {
			cut(ctx)
		}
		return
	}
	if s.chance(s.cfg.DropRate) {
		s.drop(ctx)
		return
	}
	corrupt := f == afCorrupt
	s.stats.billDownloads.Add(1)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set(wxpay.HeaderRequestID, s.requestID())
	d, k, gz := bt.day, bt.kind, bt.gzip
	ctx.SetBodyStreamWriter(func(fw *bufio.Writer) {
		w := bufio.NewWriterSize(fw, 64<<10) // fasthttp's 4 KiB buffer would cost a write per 4 KiB
		var err error
		if gz {
			zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			if err = d.render(zw, k, corrupt); err == nil {
				err = zw.Close()
			}
		} else {
			err = d.render(w, k, corrupt)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			s.log.Debug("bill download cut", "date", d.date, "err", err)
		}
	})
}

// billBody is the JSON of the bill control endpoints.
type billBody struct {
	Date string `json:"date"`
	Rows int    `json:"rows"`
}

// simBills serves POST /sim/v1/bills/synthetic {"date","rows"} and POST
// /sim/v1/bills/generate {"date"}.
func (s *Server) simBills(ctx *fasthttp.RequestCtx, synthetic bool) {
	var b billBody
	if err := decodeStrict(ctx.PostBody(), &b); err != nil {
		writeJSON(ctx, 400, simError{wxpay.CodeParamError, `want {"date":"YYYY-MM-DD","rows":N}: ` + err.Error()})
		return
	}
	var c BillCounts
	var err error
	if synthetic {
		c, err = s.SyntheticBill(b.Date, b.Rows)
	} else if b.Rows != 0 {
		err = errors.New("rows is for /sim/v1/bills/synthetic")
	} else {
		c, err = s.GenerateBill(b.Date)
	}
	if err != nil {
		writeJSON(ctx, 400, simError{wxpay.CodeParamError, err.Error()})
		return
	}
	writeJSON(ctx, 201, c)
}
