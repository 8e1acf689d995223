package wxpay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Bill layouts. Each bill has a header row of column names, then rows whose
// fields each start with a backtick and are separated by commas, then a
// summary header row and one summary row.
//
// Trade bill header rows, by bill_type (confirmed by real samples and the
// APIv2 downloadbill documentation; the APIv3 pages show no column list):
//
//	ALL (27):     交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,
//	              付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,
//	              退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注
//	SUCCESS (20): ALL without 微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,申请退款金额
//	REFUND (29):  ALL with 退款申请时间,退款成功时间 after 代金券金额
//	summary:      总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
//
// Fund-flow bill (the samples spell the amount columns with ASCII
// parentheses, the APIv2 page with full-width ones; both are accepted):
//
//	rows (11):    记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),
//	              资金变更提交申请人,备注,业务凭证号
//	summary:      资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额
//
// Parsing rules:
//   - Columns are found by name, so their order may change; a header must
//     name exactly the columns of one layout (an unknown, missing or
//     repeated column is ErrBillLayout). Older bills without 应结订单金额 and
//     代金券金额, with a five-column summary, are not supported.
//   - A UTF-8 byte order mark before the header is skipped (some real files
//     start with one; UNCONFIRMED which). Lines end in \n or \r\n; the last
//     may lack it. Empty lines are skipped. A line is at most
//     MaxBillLineBytes.
//   - Fields are split at ",`", so a comma inside a text field survives
//     (UNCONFIRMED how WeChat writes a field containing ",`" or a line
//     break; such a row fails with ErrBillMalformed).
//   - Money is exactly two decimals ("12.30", "-0.01"), the fee exactly
//     five ("0.04000"); every sample writes them so (UNCONFIRMED as a rule),
//     and the exactness makes a file cut inside its last number fail.
//     Counts are digits, optionally followed by ".0…" (the APIv2 fund-flow
//     example writes "20.0"). 费率 is a percentage with up to four
//     decimals ("0.60%"). Times are "2006-01-02 15:04:05", Beijing time.
//   - 特约商户号, 微信退款单号 and 商户退款单号 are "0" when absent and are
//     returned as "". Required: the time, 商户号, 微信订单号, 商户订单号,
//     交易状态, and on a REFUND row of a bill with refund columns
//     微信退款单号 and 商户退款单号; in a fund-flow bill 记账时间,
//     资金流水单号 and a 收支类型 of 收入 or 支出.
//   - The summary row must equal what the rows add up to (count and every
//     sum, see TradeBillSummary.Add and FundFlowSummary.Add), else
//     ErrBillSummary. Only empty lines may follow it.

// MaxBillLineBytes bounds one line of a bill (a real row is under 1 KiB:
// 商品名称 is at most 127 bytes and 商户数据包 128).
const MaxBillLineBytes = 64 << 10

type tradeCol uint8

const (
	tcTradeTime tradeCol = iota
	tcAppID
	tcMchID
	tcSubMchID
	tcDeviceInfo
	tcTransactionID
	tcOutTradeNo
	tcOpenID
	tcTradeType
	tcTradeState
	tcBankType
	tcCurrency
	tcSettlementTotal
	tcCoupon
	tcRefundApplyTime
	tcRefundSuccessTime
	tcRefundID
	tcOutRefundNo
	tcRefund
	tcRechargeCouponRefund
	tcRefundType
	tcRefundStatus
	tcDescription
	tcAttach
	tcFee
	tcRate
	tcTotal
	tcRefundRequested
	tcRateNote
	numTradeCols
)

var tradeColNames = [numTradeCols]string{
	"交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型", "交易状态",
	"付款银行", "货币种类", "应结订单金额", "代金券金额", "退款申请时间", "退款成功时间", "微信退款单号", "商户退款单号", "退款金额",
	"充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
}

// tradeLayouts are the columns of each trade bill type, in WeChat's order.
var tradeLayouts = map[BillType][]tradeCol{
	BillTypeAll: {
		tcTradeTime, tcAppID, tcMchID, tcSubMchID, tcDeviceInfo, tcTransactionID, tcOutTradeNo, tcOpenID, tcTradeType,
		tcTradeState, tcBankType, tcCurrency, tcSettlementTotal, tcCoupon, tcRefundID, tcOutRefundNo, tcRefund,
		tcRechargeCouponRefund, tcRefundType, tcRefundStatus, tcDescription, tcAttach, tcFee, tcRate, tcTotal,
		tcRefundRequested, tcRateNote,
	},
	BillTypeSuccess: {
		tcTradeTime, tcAppID, tcMchID, tcSubMchID, tcDeviceInfo, tcTransactionID, tcOutTradeNo, tcOpenID, tcTradeType,
		tcTradeState, tcBankType, tcCurrency, tcSettlementTotal, tcCoupon, tcDescription, tcAttach, tcFee, tcRate,
		tcTotal, tcRateNote,
	},
	BillTypeRefund: {
		tcTradeTime, tcAppID, tcMchID, tcSubMchID, tcDeviceInfo, tcTransactionID, tcOutTradeNo, tcOpenID, tcTradeType,
		tcTradeState, tcBankType, tcCurrency, tcSettlementTotal, tcCoupon, tcRefundApplyTime, tcRefundSuccessTime,
		tcRefundID, tcOutRefundNo, tcRefund, tcRechargeCouponRefund, tcRefundType, tcRefundStatus, tcDescription,
		tcAttach, tcFee, tcRate, tcTotal, tcRefundRequested, tcRateNote,
	},
}

var tradeSummaryNames = []string{"总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"}

type fundCol uint8

const (
	fcTime fundCol = iota
	fcBusinessID
	fcFlowID
	fcBusinessName
	fcBusinessType
	fcDirection
	fcAmount
	fcBalance
	fcApplicant
	fcNote
	fcVoucherID
	numFundCols
)

var fundColNames = [numFundCols]string{
	"记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额(元)", "账户结余(元)",
	"资金变更提交申请人", "备注", "业务凭证号",
}

// fundColAliases are other spellings of fund-flow columns.
var fundColAliases = map[string]fundCol{"收支金额（元）": fcAmount, "账户结余（元）": fcBalance}

var fundSummaryNames = []string{"资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"}

const bom = "\ufeff"

// billLines reads a bill line by line with a bounded buffer.
type billLines struct {
	br   *bufio.Reader
	n    int  // number of the last line read
	eof  bool // the reader has ended
	head bool // the first line was read
}

func newBillLines(r io.Reader) billLines {
	return billLines{br: bufio.NewReaderSize(r, MaxBillLineBytes)}
}

// next returns the next non-empty line without its line ending, as a new
// string; ok false at the end of the input (err nil) or on a read error.
func (l *billLines) next() (line string, ok bool, err error) {
	for !l.eof {
		b, err := l.br.ReadSlice('\n')
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			return "", false, fmt.Errorf("%w: line %d is longer than %d bytes", ErrBillMalformed, l.n+1, MaxBillLineBytes)
		case err == io.EOF:
			l.eof = true
			if len(b) == 0 {
				return "", false, nil
			}
		default:
			return "", false, err
		}
		l.n++
		b = trimEOL(b)
		if !l.head {
			l.head = true
			if len(b) >= len(bom) && string(b[:len(bom)]) == bom {
				b = b[len(bom):]
			}
		}
		if len(b) == 0 {
			continue
		}
		return string(b), true, nil
	}
	return "", false, nil
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// splitBillRow splits a data line into its fields, without the backticks,
// appending to dst: `a,`b,` gives a, b and "".
func splitBillRow(dst []string, line string) ([]string, bool) {
	if len(line) == 0 || line[0] != '`' {
		return dst, false
	}
	rest := line[1:]
	for {
		i := strings.Index(rest, ",`")
		if i < 0 {
			return append(dst, rest), true
		}
		dst = append(dst, rest[:i])
		rest = rest[i+2:]
	}
}

// splitNames splits a header line at its commas, appending to dst.
func splitNames(dst []string, line string) []string {
	for {
		i := strings.IndexByte(line, ',')
		if i < 0 {
			return append(dst, strings.TrimSpace(line))
		}
		dst = append(dst, strings.TrimSpace(line[:i]))
		line = line[i+1:]
	}
}

// sameNames reports whether names is exactly want.
func sameNames(names, want []string) bool {
	if len(names) != len(want) {
		return false
	}
	for i := range names {
		if names[i] != want[i] {
			return false
		}
	}
	return true
}

// Parser states.
const (
	bpHeader  = iota // before the header row
	bpRows           // in the rows
	bpSummary        // after the summary header
	bpDone           // after the summary row (or an error)
)

// billParser is the state shared by both bill readers.
type billParser struct {
	lines  billLines
	state  int
	err    error
	fields []string
	names  []string
}

// fail records the first error and ends parsing.
func (p *billParser) fail(err error) bool {
	p.err = err
	p.state = bpDone
	return false
}

func (p *billParser) malformed(format string, a ...any) bool {
	return p.fail(fmt.Errorf("%w: line %d: "+format, append([]any{ErrBillMalformed, p.lines.n}, a...)...))
}

// readHeader reads the header row into p.names.
// billLayout is what a bill's reader adds to billParser: mapping the
// header to its columns, decoding a row, and checking the summary.
type billLayout interface {
	layout() bool
	parseRow() bool
	finish() bool
}

// advance is a reader's Next: the header (mapped by b) first, then one
// data row, or the summary that ends the bill.
func (p *billParser) advance(b billLayout, summaryNames []string) bool {
	switch p.state {
	case bpHeader:
		if !p.readHeader() || !b.layout() {
			return false
		}
		p.state = bpRows
		fallthrough
	case bpRows:
		summary, ok := p.nextData(summaryNames)
		if !ok {
			return false
		}
		if !summary {
			return b.parseRow()
		}
		return b.finish()
	}
	return false
}

func (p *billParser) readHeader() bool {
	line, ok, err := p.lines.next()
	if err != nil {
		return p.fail(err)
	}
	if !ok {
		return p.fail(fmt.Errorf("%w: no header row", ErrBillTruncated))
	}
	if line[0] == '`' {
		return p.fail(fmt.Errorf("%w: the first line is a data row, not a header", ErrBillLayout))
	}
	p.names = splitNames(p.names[:0], line)
	return true
}

// nextData reads the next line in the rows: a data row (fields in
// p.fields, summary false) or the summary header (summary true). ok false
// ends parsing with an error.
func (p *billParser) nextData(summaryNames []string) (summary, ok bool) {
	line, ok, err := p.lines.next()
	if err != nil {
		return false, p.fail(err)
	}
	if !ok {
		return false, p.fail(fmt.Errorf("%w: the input ends after %d lines without a summary", ErrBillTruncated, p.lines.n))
	}
	if line[0] == '`' {
		p.fields, _ = splitBillRow(p.fields[:0], line)
		return false, true
	}
	p.names = splitNames(p.names[:0], line)
	if !sameNames(p.names, summaryNames) {
		if p.names[0] == summaryNames[0] {
			return false, p.fail(fmt.Errorf("%w: line %d: unknown summary header", ErrBillLayout, p.lines.n))
		}
		return false, p.malformed("neither a data row nor the summary header")
	}
	p.state = bpSummary
	return true, true
}

// readSummary reads the summary row into p.fields and checks that only
// empty lines follow it.
func (p *billParser) readSummary(n int) bool {
	line, ok, err := p.lines.next()
	if err != nil {
		return p.fail(err)
	}
	if !ok {
		return p.fail(fmt.Errorf("%w: the summary header has no summary row", ErrBillTruncated))
	}
	var good bool
	if p.fields, good = splitBillRow(p.fields[:0], line); !good || len(p.fields) != n {
		return p.malformed("summary row: want %d backtick fields", n)
	}
	sumLine := p.lines.n
	if _, more, err := p.lines.next(); err != nil {
		return p.fail(err)
	} else if more {
		return p.malformed("data after the summary row (line %d)", sumLine)
	}
	p.state = bpDone
	return true
}

// TradeBillReader reads a trade bill row by row from a stream, holding one
// line at a time (at most MaxBillLineBytes). Use it like bufio.Scanner:
//
//	p := wxpay.NewTradeBillReader(r, wxpay.BillTypeAll)
//	for p.Next() {
//		row := p.Row()
//		...
//	}
//	if err := p.Err(); err != nil { ... }
//	sum := p.Summary()
//
// Rows are delivered before the summary and the end of the input are seen:
// treat them as provisional until Next has returned false with Err() nil,
// which means the summary row matched the rows and, if r checks a digest
// at its end (DigestReader, client.DownloadBill), the digest matched. A
// parse error may be a symptom of a corrupted file: when r checks a digest,
// reading r to its end tells (it then fails with ErrBillDigest).
//
// Errors wrap ErrBillLayout, ErrBillTruncated, ErrBillMalformed or
// ErrBillSummary, or are r's own error unchanged. Messages carry line
// numbers and column names, never field values. A TradeBillReader is not
// safe for concurrent use.
type TradeBillReader struct {
	billParser
	want       BillType
	typ        BillType
	cols       []tradeCol // column of each field position
	row        TradeBillRow
	sum        TradeBillSummary // what the rows add up to
	file       TradeBillSummary // the summary row
	refundCols bool
}

// NewTradeBillReader returns a reader of the trade bill in r. want is the
// bill_type asked for: a header of another type fails with ErrBillLayout;
// "" accepts any of ALL, SUCCESS and REFUND.
func NewTradeBillReader(r io.Reader, want BillType) *TradeBillReader {
	p := &TradeBillReader{billParser: billParser{lines: newBillLines(r)}, want: want}
	if want != "" && !want.Valid() {
		p.fail(fmt.Errorf("%w: bill type %.16q", ErrBillLayout, string(want)))
	}
	return p
}

// Next advances to the next row; false at the end or on an error.
func (p *TradeBillReader) Next() bool { return p.advance(p, tradeSummaryNames) }

// layout maps the header in p.names to a bill type and column order.
func (p *TradeBillReader) layout() bool {
	var seen [numTradeCols]bool
	p.cols = p.cols[:0]
	for i, name := range p.names {
		c := tradeCol(numTradeCols)
		for j, n := range tradeColNames {
			if n == name {
				c = tradeCol(j)
				break
			}
		}
		switch {
		case c == numTradeCols:
			return p.fail(fmt.Errorf("%w: header column %d %.40q is unknown", ErrBillLayout, i+1, name))
		case seen[c]:
			return p.fail(fmt.Errorf("%w: header column %s appears twice", ErrBillLayout, name))
		}
		seen[c] = true
		p.cols = append(p.cols, c)
	}
	for _, t := range []BillType{BillTypeAll, BillTypeSuccess, BillTypeRefund} {
		cols := tradeLayouts[t]
		if len(cols) != len(p.cols) {
			continue
		}
		match := true
		for _, c := range cols {
			match = match && seen[c]
		}
		if match {
			p.typ = t
			break
		}
	}
	switch {
	case p.typ == "":
		return p.fail(fmt.Errorf("%w: a header of %d columns that is no trade bill layout", ErrBillLayout, len(p.cols)))
	case p.want != "" && p.typ != p.want:
		return p.fail(fmt.Errorf("%w: a %s bill, want %s", ErrBillLayout, p.typ, p.want))
	}
	p.refundCols = seen[tcRefundID]
	return true
}

// parseRow decodes p.fields into p.row.
func (p *TradeBillReader) parseRow() bool {
	if len(p.fields) != len(p.cols) {
		return p.malformed("%d fields, want %d", len(p.fields), len(p.cols))
	}
	r := &p.row
	*r = TradeBillRow{}
	var ok bool
	for i, f := range p.fields {
		switch c := p.cols[i]; c {
		case tcTradeTime:
			r.TradeTime, ok = parseBillClock(f, false)
		case tcRefundApplyTime:
			r.RefundApplyTime, ok = parseBillClock(f, true)
		case tcRefundSuccessTime:
			r.RefundSuccessTime, ok = parseBillClock(f, true)
		case tcSettlementTotal:
			r.SettlementTotal, ok = parseBillFixed(f, 2)
		case tcCoupon:
			r.Coupon, ok = parseBillFixed(f, 2)
		case tcRefund:
			r.Refund, ok = parseBillFixed(f, 2)
		case tcRechargeCouponRefund:
			r.RechargeCouponRefund, ok = parseBillFixed(f, 2)
		case tcTotal:
			r.Total, ok = parseBillFixed(f, 2)
		case tcRefundRequested:
			r.RefundRequested, ok = parseBillFixed(f, 2)
		case tcFee:
			r.FeeMilliFen, ok = parseBillFixed(f, 5)
		case tcRate:
			r.RatePPM, ok = parseBillRate(f)
		default:
			ok = true
			p.setText(r, c, f)
		}
		if !ok {
			return p.malformed("column %s is malformed", tradeColNames[p.cols[i]])
		}
	}
	switch {
	case r.MchID == "":
		return p.malformed("column %s is empty", tradeColNames[tcMchID])
	case r.TransactionID == "":
		return p.malformed("column %s is empty", tradeColNames[tcTransactionID])
	case r.OutTradeNo == "":
		return p.malformed("column %s is empty", tradeColNames[tcOutTradeNo])
	case r.TradeState == "":
		return p.malformed("column %s is empty", tradeColNames[tcTradeState])
	case p.refundCols && r.TradeState == TradeStateRefund && (r.RefundID == "" || r.OutRefundNo == ""):
		return p.malformed("a refund row without %s or %s", tradeColNames[tcRefundID], tradeColNames[tcOutRefundNo])
	}
	if err := p.sum.Add(r); err != nil {
		return p.fail(fmt.Errorf("line %d: %w", p.lines.n, err))
	}
	return true
}

// setText stores a text column; "0" means none for the three id columns
// WeChat fills with it.
func (p *TradeBillReader) setText(r *TradeBillRow, c tradeCol, f string) {
	switch c {
	case tcAppID:
		r.AppID = f
	case tcMchID:
		r.MchID = f
	case tcSubMchID:
		r.SubMchID = zeroNone(f)
	case tcDeviceInfo:
		r.DeviceInfo = f
	case tcTransactionID:
		r.TransactionID = f
	case tcOutTradeNo:
		r.OutTradeNo = f
	case tcOpenID:
		r.OpenID = f
	case tcTradeType:
		r.TradeType = f
	case tcTradeState:
		r.TradeState = f
	case tcBankType:
		r.BankType = f
	case tcCurrency:
		r.Currency = f
	case tcRefundID:
		r.RefundID = zeroNone(f)
	case tcOutRefundNo:
		r.OutRefundNo = zeroNone(f)
	case tcRefundType:
		r.RefundType = f
	case tcRefundStatus:
		r.RefundStatus = f
	case tcDescription:
		r.Description = f
	case tcAttach:
		r.Attach = f
	case tcRateNote:
		r.RateNote = f
	}
}

func zeroNone(s string) string {
	if s == "0" {
		return ""
	}
	return s
}

// finish reads and checks the summary row.
func (p *TradeBillReader) finish() bool {
	if !p.readSummary(len(tradeSummaryNames)) {
		return false
	}
	f := p.fields
	s := &p.file
	var ok bool
	for i, dst := range []*int64{&s.Count, &s.SettlementTotal, &s.Refund, &s.RechargeCouponRefund, &s.FeeMilliFen, &s.Total, &s.RefundRequested} {
		switch i {
		case 0:
			*dst, ok = parseBillCount(f[i])
		case 4:
			*dst, ok = parseBillFixed(f[i], 5)
		default:
			*dst, ok = parseBillFixed(f[i], 2)
		}
		if !ok {
			return p.fail(fmt.Errorf("%w: summary column %s is malformed", ErrBillMalformed, tradeSummaryNames[i]))
		}
	}
	if *s != p.sum {
		return p.fail(fmt.Errorf("%w: the summary says %+v, the rows add up to %+v", ErrBillSummary, *s, p.sum))
	}
	return false
}

// Row returns the current row. The pointed-to value is overwritten by the
// next call to Next; copy it (a plain struct copy) to keep it.
func (p *TradeBillReader) Row() *TradeBillRow { return &p.row }

// Err returns the error that stopped Next, or nil at a clean end.
func (p *TradeBillReader) Err() error { return p.err }

// Summary returns the summary row once Next has returned false with Err()
// nil (it then equals what the rows add up to); before that, or after an
// error, the zero value.
func (p *TradeBillReader) Summary() TradeBillSummary {
	if p.state != bpDone || p.err != nil {
		return TradeBillSummary{}
	}
	return p.file
}

// ParseTradeBill reads the trade bill in r, calling fn for each row (see
// TradeBillReader for want, the errors and when rows can be trusted). An
// error from fn stops parsing and is returned as is. The row passed to fn
// is overwritten after fn returns.
func ParseTradeBill(r io.Reader, want BillType, fn func(*TradeBillRow) error) (TradeBillSummary, BillType, error) {
	p := NewTradeBillReader(r, want)
	for p.Next() {
		if err := fn(p.Row()); err != nil {
			return TradeBillSummary{}, p.typ, err
		}
	}
	if p.err != nil {
		return TradeBillSummary{}, p.typ, p.err
	}
	return p.file, p.typ, nil
}

// FundFlowBillReader reads a fund-flow bill row by row from a stream; it
// behaves as TradeBillReader (see there for trust, errors and concurrency).
type FundFlowBillReader struct {
	billParser
	cols []fundCol
	row  FundFlowRow
	sum  FundFlowSummary
	file FundFlowSummary
}

// NewFundFlowBillReader returns a reader of the fund-flow bill in r.
func NewFundFlowBillReader(r io.Reader) *FundFlowBillReader {
	return &FundFlowBillReader{billParser: billParser{lines: newBillLines(r)}}
}

// Next advances to the next row; false at the end or on an error.
func (p *FundFlowBillReader) Next() bool { return p.advance(p, fundSummaryNames) }

func (p *FundFlowBillReader) layout() bool {
	var seen [numFundCols]bool
	p.cols = p.cols[:0]
	for i, name := range p.names {
		c, ok := fundColAliases[name]
		if !ok {
			c = numFundCols
			for j, n := range fundColNames {
				if n == name {
					c = fundCol(j)
					break
				}
			}
		}
		switch {
		case c == numFundCols:
			return p.fail(fmt.Errorf("%w: header column %d %.40q is unknown", ErrBillLayout, i+1, name))
		case seen[c]:
			return p.fail(fmt.Errorf("%w: header column %s appears twice", ErrBillLayout, fundColNames[c]))
		}
		seen[c] = true
		p.cols = append(p.cols, c)
	}
	if len(p.cols) != int(numFundCols) {
		return p.fail(fmt.Errorf("%w: a header of %d columns, want the %d of a fund-flow bill", ErrBillLayout, len(p.cols), numFundCols))
	}
	return true
}

func (p *FundFlowBillReader) parseRow() bool {
	if len(p.fields) != len(p.cols) {
		return p.malformed("%d fields, want %d", len(p.fields), len(p.cols))
	}
	r := &p.row
	*r = FundFlowRow{}
	ok := true
	for i, f := range p.fields {
		switch p.cols[i] {
		case fcTime:
			r.Time, ok = parseBillClock(f, false)
		case fcBusinessID:
			r.BusinessID = f
		case fcFlowID:
			r.FlowID = f
		case fcBusinessName:
			r.BusinessName = f
		case fcBusinessType:
			r.BusinessType = f
		case fcDirection:
			r.Direction = f
		case fcAmount:
			r.Amount, ok = parseBillFixed(f, 2)
			ok = ok && r.Amount >= 0
		case fcBalance:
			r.Balance, ok = parseBillFixed(f, 2)
		case fcApplicant:
			r.Applicant = f
		case fcNote:
			r.Note = f
		case fcVoucherID:
			r.VoucherID = f
		}
		if !ok {
			return p.malformed("column %s is malformed", fundColNames[p.cols[i]])
		}
	}
	if r.FlowID == "" {
		return p.malformed("column %s is empty", fundColNames[fcFlowID])
	}
	if err := p.sum.Add(r); err != nil {
		return p.fail(fmt.Errorf("line %d: %w", p.lines.n, err))
	}
	return true
}

func (p *FundFlowBillReader) finish() bool {
	if !p.readSummary(len(fundSummaryNames)) {
		return false
	}
	f := p.fields
	s := &p.file
	var ok bool
	for i, dst := range []*int64{&s.Count, &s.IncomeCount, &s.Income, &s.ExpenseCount, &s.Expense} {
		if i == 2 || i == 4 {
			*dst, ok = parseBillFixed(f[i], 2)
		} else {
			*dst, ok = parseBillCount(f[i])
		}
		if !ok {
			return p.fail(fmt.Errorf("%w: summary column %s is malformed", ErrBillMalformed, fundSummaryNames[i]))
		}
	}
	if *s != p.sum {
		return p.fail(fmt.Errorf("%w: the summary says %+v, the rows add up to %+v", ErrBillSummary, *s, p.sum))
	}
	return false
}

// Row returns the current row, overwritten by the next call to Next.
func (p *FundFlowBillReader) Row() *FundFlowRow { return &p.row }

// ParseFundFlowBill reads the fund-flow bill in r, calling fn for each row,
// as ParseTradeBill does.
func ParseFundFlowBill(r io.Reader, fn func(*FundFlowRow) error) (FundFlowSummary, error) {
	p := NewFundFlowBillReader(r)
	for p.Next() {
		if err := fn(p.Row()); err != nil {
			return FundFlowSummary{}, err
		}
	}
	if p.err != nil {
		return FundFlowSummary{}, p.err
	}
	return p.file, nil
}

// maxBillIntDigits bounds the integer part of an amount: 13 digits of yuan
// keep the fee (five decimals) and every sum of a bill inside int64.
const maxBillIntDigits = 13

// parseBillFixed parses [-]digits.dd… with exactly dec decimals into an
// integer of 10^-dec yuan.
func parseBillFixed(s string, dec int) (int64, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	dot := strings.IndexByte(s, '.')
	if dot < 1 || dot > maxBillIntDigits || len(s)-dot-1 != dec {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		if i == dot {
			continue
		}
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// parseBillCount parses a count: digits, optionally followed by "." and
// zeros.
func parseBillCount(s string) (int64, bool) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		if i == len(s)-1 || strings.Trim(s[i+1:], "0") != "" {
			return 0, false
		}
		s = s[:i]
	}
	if len(s) == 0 || len(s) > 15 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// parseBillRate parses a percentage with up to four decimals ("0.60%")
// into millionths.
func parseBillRate(s string) (int64, bool) {
	if len(s) < 2 || s[len(s)-1] != '%' {
		return 0, false
	}
	s = s[:len(s)-1]
	whole, frac, _ := strings.Cut(s, ".")
	if len(whole) == 0 || len(whole) > 3 || len(frac) > 4 || strings.Contains(s, ".") && frac == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(whole); i++ {
		if whole[i] < '0' || whole[i] > '9' {
			return 0, false
		}
		v = v*10 + int64(whole[i]-'0')
	}
	for i := 0; i < 4; i++ {
		d := int64(0)
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, false
			}
			d = int64(frac[i] - '0')
		}
		v = v*10 + d
	}
	return v, true
}

// parseBillClock parses "2006-01-02 15:04:05" in Beijing time, strictly
// (a real date and time of day). empty allows "" (the zero time).
func parseBillClock(s string, empty bool) (time.Time, bool) {
	if s == "" {
		return time.Time{}, empty
	}
	if len(s) != len(BillTimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for j := i; j < i+n; j++ {
			c := s[j]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	h, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, BillLocation)
	if t.Day() != d { // 2026-02-30 normalised into March
		return time.Time{}, false
	}
	return t, true
}
