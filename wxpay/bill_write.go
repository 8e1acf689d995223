package wxpay

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Bill writers: the inverse of the readers, for the simulator and tests.
// They write the layouts of bill_parse.go as every sample shows them: the
// header in WeChat's column order, a backtick before every field, money
// with two decimals, the fee with five, 费率 as "0.60%", "0" for an absent
// 特约商户号, 微信退款单号 or 商户退款单号, lines ending in \r\n (as the APIv2
// dumps; UNCONFIRMED for APIv3 downloads), no byte order mark. Text is
// written as given except that a line break becomes a space and a backtick
// right after a comma becomes an apostrophe, so the file stays parseable
// (UNCONFIRMED what WeChat does with such text). A writer never writes
// anything ParseTradeBill or ParseFundFlowBill would refuse: a row they
// would refuse fails with ErrBillMalformed and nothing of it is written.

var errBillWriterClosed = errors.New("wxpay: bill writer closed")

// TradeBillWriter writes a trade bill to an io.Writer (give it a buffered
// one). It is not safe for concurrent use.
type TradeBillWriter struct {
	w    io.Writer
	typ  BillType
	cols []tradeCol
	buf  []byte
	sum  TradeBillSummary
	err  error // sticky write error, or errBillWriterClosed
}

// NewTradeBillWriter writes the header row of a bill of type t to w.
func NewTradeBillWriter(w io.Writer, t BillType) (*TradeBillWriter, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: bill type %.16q", ErrBillLayout, string(t))
	}
	bw := &TradeBillWriter{w: w, typ: t, cols: tradeLayouts[t], buf: make([]byte, 0, 512)}
	b := bw.buf[:0]
	for i, c := range bw.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, tradeColNames[c]...)
	}
	bw.buf = append(b, '\r', '\n')
	if _, err := w.Write(bw.buf); err != nil {
		bw.err = err
		return nil, err
	}
	return bw, nil
}

// Write appends one row. A row the parser would refuse (an empty required
// field, a zero trade time, an amount beyond 13 digits of yuan, a negative
// rate) fails with ErrBillMalformed and writes nothing.
func (w *TradeBillWriter) Write(r *TradeBillRow) error {
	if w.err != nil {
		return w.err
	}
	if err := checkTradeRow(r, w.typ != BillTypeSuccess); err != nil {
		return err
	}
	next := w.sum
	if err := next.Add(r); err != nil {
		return err
	}
	b := w.buf[:0]
	for i, c := range w.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '`')
		b = appendTradeField(b, r, c)
	}
	w.buf = append(b, '\r', '\n')
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = err
		return err
	}
	w.sum = next
	return nil
}

// Summary returns what the rows written so far add up to.
func (w *TradeBillWriter) Summary() TradeBillSummary { return w.sum }

// HeaderLen returns the length in bytes of the header row, line ending
// included (the offset of the first row).
func (w *TradeBillWriter) HeaderLen() int {
	n := 2 + len(w.cols) - 1
	for _, c := range w.cols {
		n += len(tradeColNames[c])
	}
	return n
}

// Close writes the summary header and the summary row. It does not close
// the underlying writer; later calls to Write or Close fail.
func (w *TradeBillWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = errBillWriterClosed
	s := w.sum
	b := append(w.buf[:0], strings.Join(tradeSummaryNames, ",")...)
	b = append(b, "\r\n`"...)
	b = strconv.AppendInt(b, s.Count, 10)
	for i, v := range []int64{s.SettlementTotal, s.Refund, s.RechargeCouponRefund, s.FeeMilliFen, s.Total, s.RefundRequested} {
		b = append(b, ",`"...)
		dec := 2
		if i == 3 {
			dec = 5
		}
		b = appendBillFixed(b, v, dec)
	}
	w.buf = append(b, '\r', '\n')
	_, err := w.w.Write(w.buf)
	return err
}

// checkTradeRow applies the parser's rules to a row about to be written.
func checkTradeRow(r *TradeBillRow, refundCols bool) error {
	bad := func(what string) error { return fmt.Errorf("%w: cannot write a row with %s", ErrBillMalformed, what) }
	switch {
	case !billYear(r.TradeTime) || !r.RefundApplyTime.IsZero() && !billYear(r.RefundApplyTime) ||
		!r.RefundSuccessTime.IsZero() && !billYear(r.RefundSuccessTime):
		return bad("no trade time or a time outside the years 1970 to 9999")
	case r.MchID == "" || r.TransactionID == "" || r.OutTradeNo == "" || r.TradeState == "":
		return bad("an empty mchid, transaction_id, out_trade_no or trade state")
	case refundCols && r.TradeState == TradeStateRefund && (r.RefundID == "" || r.OutRefundNo == ""):
		return bad("a refund without refund_id or out_refund_no")
	case r.RatePPM < 0 || r.RatePPM >= 1000*1_000_000:
		return bad("a rate out of range")
	}
	for _, v := range []int64{r.SettlementTotal, r.Coupon, r.Refund, r.RechargeCouponRefund, r.Total, r.RefundRequested} {
		if !fitsBillFixed(v, 2) {
			return bad("an amount out of range")
		}
	}
	if !fitsBillFixed(r.FeeMilliFen, 5) {
		return bad("a fee out of range")
	}
	return nil
}

func appendTradeField(b []byte, r *TradeBillRow, c tradeCol) []byte {
	switch c {
	case tcTradeTime:
		return appendBillTime(b, r.TradeTime)
	case tcAppID:
		return appendBillText(b, r.AppID)
	case tcMchID:
		return appendBillText(b, r.MchID)
	case tcSubMchID:
		return appendBillText(b, orZero(r.SubMchID))
	case tcDeviceInfo:
		return appendBillText(b, r.DeviceInfo)
	case tcTransactionID:
		return appendBillText(b, r.TransactionID)
	case tcOutTradeNo:
		return appendBillText(b, r.OutTradeNo)
	case tcOpenID:
		return appendBillText(b, r.OpenID)
	case tcTradeType:
		return appendBillText(b, r.TradeType)
	case tcTradeState:
		return appendBillText(b, r.TradeState)
	case tcBankType:
		return appendBillText(b, r.BankType)
	case tcCurrency:
		return appendBillText(b, r.Currency)
	case tcSettlementTotal:
		return appendBillFixed(b, r.SettlementTotal, 2)
	case tcCoupon:
		return appendBillFixed(b, r.Coupon, 2)
	case tcRefundApplyTime:
		return appendBillTime(b, r.RefundApplyTime)
	case tcRefundSuccessTime:
		return appendBillTime(b, r.RefundSuccessTime)
	case tcRefundID:
		return appendBillText(b, orZero(r.RefundID))
	case tcOutRefundNo:
		return appendBillText(b, orZero(r.OutRefundNo))
	case tcRefund:
		return appendBillFixed(b, r.Refund, 2)
	case tcRechargeCouponRefund:
		return appendBillFixed(b, r.RechargeCouponRefund, 2)
	case tcRefundType:
		return appendBillText(b, r.RefundType)
	case tcRefundStatus:
		return appendBillText(b, r.RefundStatus)
	case tcDescription:
		return appendBillText(b, r.Description)
	case tcAttach:
		return appendBillText(b, r.Attach)
	case tcFee:
		return appendBillFixed(b, r.FeeMilliFen, 5)
	case tcRate:
		return appendBillRate(b, r.RatePPM)
	case tcTotal:
		return appendBillFixed(b, r.Total, 2)
	case tcRefundRequested:
		return appendBillFixed(b, r.RefundRequested, 2)
	case tcRateNote:
		return appendBillText(b, r.RateNote)
	}
	return b
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// FundFlowBillWriter writes a fund-flow bill (ASCII parentheses in the
// amount columns, as the APIv3 samples). It is not safe for concurrent use.
type FundFlowBillWriter struct {
	w   io.Writer
	buf []byte
	sum FundFlowSummary
	err error
}

// NewFundFlowBillWriter writes the header row of a fund-flow bill to w.
func NewFundFlowBillWriter(w io.Writer) (*FundFlowBillWriter, error) {
	fw := &FundFlowBillWriter{w: w, buf: make([]byte, 0, 256)}
	fw.buf = append(append(fw.buf, strings.Join(fundColNames[:], ",")...), '\r', '\n')
	if _, err := w.Write(fw.buf); err != nil {
		return nil, err
	}
	return fw, nil
}

// Write appends one row; a row the parser would refuse fails with
// ErrBillMalformed and writes nothing.
func (w *FundFlowBillWriter) Write(r *FundFlowRow) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case !billYear(r.Time) || r.FlowID == "":
		return fmt.Errorf("%w: cannot write a fund-flow row without a time or 资金流水单号", ErrBillMalformed)
	case r.Amount < 0 || !fitsBillFixed(r.Amount, 2) || !fitsBillFixed(r.Balance, 2):
		return fmt.Errorf("%w: cannot write a fund-flow amount out of range", ErrBillMalformed)
	}
	next := w.sum
	if err := next.Add(r); err != nil {
		return err
	}
	b := append(w.buf[:0], '`')
	b = appendBillTime(b, r.Time)
	for _, s := range []string{r.BusinessID, r.FlowID, r.BusinessName, r.BusinessType, r.Direction} {
		b = appendBillText(append(b, ",`"...), s)
	}
	b = appendBillFixed(append(b, ",`"...), r.Amount, 2)
	b = appendBillFixed(append(b, ",`"...), r.Balance, 2)
	for _, s := range []string{r.Applicant, r.Note, r.VoucherID} {
		b = appendBillText(append(b, ",`"...), s)
	}
	w.buf = append(b, '\r', '\n')
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = err
		return err
	}
	w.sum = next
	return nil
}

// Summary returns what the rows written so far add up to.
func (w *FundFlowBillWriter) Summary() FundFlowSummary { return w.sum }

// HeaderLen returns the length in bytes of the header row, line ending
// included (the offset of the first row).
func (w *FundFlowBillWriter) HeaderLen() int { return len(strings.Join(fundColNames[:], ",")) + 2 }

// Close writes the summary header and row; it does not close the
// underlying writer.
func (w *FundFlowBillWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = errBillWriterClosed
	s := w.sum
	b := append(w.buf[:0], strings.Join(fundSummaryNames, ",")...)
	b = append(b, "\r\n`"...)
	b = strconv.AppendInt(b, s.Count, 10)
	b = strconv.AppendInt(append(b, ",`"...), s.IncomeCount, 10)
	b = appendBillFixed(append(b, ",`"...), s.Income, 2)
	b = strconv.AppendInt(append(b, ",`"...), s.ExpenseCount, 10)
	b = appendBillFixed(append(b, ",`"...), s.Expense, 2)
	w.buf = append(b, '\r', '\n')
	_, err := w.w.Write(w.buf)
	return err
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000}

// fitsBillFixed reports whether v has at most maxBillIntDigits digits of
// yuan at dec decimals.
func fitsBillFixed(v int64, dec int) bool {
	lim := pow10[dec]
	for range maxBillIntDigits {
		lim *= 10
	}
	return v > -lim && v < lim
}

// appendBillFixed appends v (10^-dec yuan) with exactly dec decimals. v
// must satisfy fitsBillFixed.
func appendBillFixed(b []byte, v int64, dec int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	p := pow10[dec]
	b = strconv.AppendInt(b, v/p, 10)
	b = append(b, '.')
	frac := v % p
	for d := p / 10; d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return b
}

// appendBillRate appends millionths as a percentage: two decimals when they
// suffice ("0.60%"), else four.
func appendBillRate(b []byte, ppm int64) []byte {
	b = strconv.AppendInt(b, ppm/10000, 10)
	b = append(b, '.')
	frac, digits := ppm%10000, int64(1000)
	if frac%100 == 0 {
		frac, digits = frac/100, 10
	}
	for d := digits; d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return append(b, '%')
}

// billYear reports whether t, in Beijing time, is in a year a bill can
// hold (four digits, 1970 or later).
func billYear(t time.Time) bool {
	y := t.In(BillLocation).Year()
	return !t.IsZero() && y >= 1970 && y <= 9999
}

func appendBillTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return t.In(BillLocation).AppendFormat(b, BillTimeLayout)
}

// appendBillText appends s with line breaks made spaces and a backtick
// after a comma made an apostrophe.
func appendBillText(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] != '\r' && s[i] != '\n' && s[i] != '`'
	}
	if plain {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\r' || c == '\n':
			c = ' '
		case c == '`' && len(b) > 0 && b[len(b)-1] == ',':
			c = '\''
		}
		b = append(b, c)
	}
	return b
}
