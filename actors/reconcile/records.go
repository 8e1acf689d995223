package reconcile

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Run is the state and result of a date's reconciliation, as stored under
// c/r/<date> and answered by GET /admin/v1/reconciliations/{date}.
// Amounts are fen, except the fee.
type Run struct {
	Date string `json:"date"`
	// Run numbers the reconciliations of the date: 1, then one more for
	// each rerun asked for after one finished.
	Run int `json:"run"`
	// Status is pending (asked for, not started), running, waiting (WeChat
	// is still generating the bill), failed (retried at next_attempt_at,
	// see error) or done.
	Status    string `json:"status"`
	Phase     string `json:"phase,omitempty"` // while running: download, match, repair, complete
	Requested bool   `json:"requested,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	Error     string `json:"error,omitempty"`
	NextMs    int64  `json:"next_attempt_ms,omitempty"`
	StartedMs int64  `json:"started_ms,omitempty"`
	UpdatedMs int64  `json:"updated_ms,omitempty"`
	DoneMs    int64  `json:"done_ms,omitempty"`
	Cursor    string `json:"cursor,omitempty"` // match: the last out_trade_no done

	BillRows int64 `json:"bill_rows"` // rows of the bill reconciled here
	Matched  int64 `json:"matched"`   // orders that agree with the bill
	Ours     Side  `json:"ours"`
	WeChat   Side  `json:"wechat"`

	Found    int64            `json:"discrepancies_found"` // by this run, new or known
	Open     map[string]int64 `json:"open,omitempty"`      // the date's unresolved discrepancies by class
	Repaired int64            `json:"repaired"`            // the date's discrepancies repaired
	Resolved int64            `json:"resolved"`            // the date's discrepancies no longer found or resolved by hand

	Loaded    bool   `json:"loaded"` // the bill rows and discrepancies are in the analytics store
	LoadError string `json:"load_error,omitempty"`
}

// Side sums one side's payments and refunds of the date: wxpayd's orders
// paid that day and refunds requested that day (not FAILED), or the bill's
// rows.
type Side struct {
	Payments   int64 `json:"payments"`
	PaymentFen int64 `json:"payment_fen"`
	Refunds    int64 `json:"refunds"`
	RefundFen  int64 `json:"refund_fen"`
	// FeeMilliFen (手续费, thousandths of a fen) and SettlementFen
	// (应结订单金额 less refunds) are the bill's only.
	FeeMilliFen   int64 `json:"fee_milli_fen,omitempty"`
	SettlementFen int64 `json:"settlement_fen,omitempty"`
}

func (s *Side) add(o Side) {
	s.Payments += o.Payments
	s.PaymentFen += o.PaymentFen
	s.Refunds += o.Refunds
	s.RefundFen += o.RefundFen
	s.FeeMilliFen += o.FeeMilliFen
	s.SettlementFen += o.SettlementFen
}

// addRow counts a bill row into the bill's side.
func (s *Side) addRow(r *wxpay.TradeBillRow) {
	switch r.TradeState {
	case wxpay.TradeStateSuccess:
		s.Payments++
		s.PaymentFen += r.Total
		s.SettlementFen += r.SettlementTotal
	case wxpay.TradeStateRefund:
		s.Refunds++
		s.RefundFen += r.Refund
		s.SettlementFen -= r.Refund
	}
	s.FeeMilliFen += r.FeeMilliFen
}

// Run statuses and phases.
const (
	StatusPending = "pending"
	StatusRunning = "running"
	StatusWaiting = "waiting"
	StatusFailed  = "failed"
	StatusDone    = "done"

	phaseDownload = "download"
	phaseMatch    = "match"
	phaseRepair   = "repair"
	phaseComplete = "complete"
)

// Discrepancy classes: how wxpayd and WeChat's bill disagree. The names are
// a contract (events' reason, metrics' class label, ClickHouse).
const (
	// ClassPaymentMissingHere: WeChat's bill has the payment, the order
	// here is not PAID (a notification lost with every query). Repaired:
	// the order queries WeChat and applies the payment.
	ClassPaymentMissingHere = "payment_missing_here"
	// ClassPaymentMissingAtWeChat: the order was PAID here that day, the
	// bill lacks it, and WeChat does not report it paid on another day.
	ClassPaymentMissingAtWeChat = "payment_missing_at_wechat"
	// ClassAmountMismatch: the bill's order amount (订单金额) is not the order's.
	ClassAmountMismatch = "amount_mismatch"
	// ClassTransactionMismatch: the bill's transaction_id is not the one
	// the order was paid with.
	ClassTransactionMismatch = "transaction_mismatch"
	// ClassUnknownOrder: a bill row for an out_trade_no wxpayd does not
	// have (another system's order on the same merchant account).
	ClassUnknownOrder = "unknown_order"
	// ClassRefundMissingHere: the bill has a refund the order does not know.
	ClassRefundMissingHere = "refund_missing_here"
	// ClassRefundMissingAtWeChat: a refund requested here that day is not
	// in the bill, and WeChat does not know it on another day.
	ClassRefundMissingAtWeChat = "refund_missing_at_wechat"
	// ClassRefundAmountMismatch: the refund's amount differs.
	ClassRefundAmountMismatch = "refund_amount_mismatch"
	// ClassRefundStatusMismatch: the bill says the refund ended one way
	// (SUCCESS, closed) and wxpayd holds another outcome, or wxpayd holds
	// it failed while WeChat has it.
	ClassRefundStatusMismatch = "refund_status_mismatch"
)

// Classes lists every class.
var Classes = []string{ClassPaymentMissingHere, ClassPaymentMissingAtWeChat, ClassAmountMismatch,
	ClassTransactionMismatch, ClassUnknownOrder, ClassRefundMissingHere, ClassRefundMissingAtWeChat,
	ClassRefundAmountMismatch, ClassRefundStatusMismatch}

// Discrepancy statuses.
const (
	DiscrepancyOpen     = "open"     // unresolved
	DiscrepancyRepaired = "repaired" // the order was repaired (payment_missing_here)
	// DiscrepancyResolved: a later run of the date no longer found it, or
	// an admin resolved it by hand (ResolvedBy is set; Resolve).
	DiscrepancyResolved = "resolved"
)

// ResolvedByAdmin is the resolved_by of a discrepancy an admin resolved
// through the admin API.
const ResolvedByAdmin = "admin"

// Discrepancy is one disagreement, stored under c/d/<date>/<key>. Our*
// fields are wxpayd's view, WeChat* the bill's (or WeChat's answer to the
// confirming query).
type Discrepancy struct {
	Key           string `json:"key"` // class:out_trade_no[:out_refund_no]
	Date          string `json:"date"`
	Class         string `json:"class"`
	Status        string `json:"status"`
	OutTradeNo    string `json:"out_trade_no"`
	OutRefundNo   string `json:"out_refund_no,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"` // the bill's (or the order's)
	OurState      string `json:"our_state,omitempty"`      // the order's state or the refund's status
	OurAmount     int64  `json:"our_amount,omitempty"`
	WeChatState   string `json:"wechat_state,omitempty"`
	WeChatAmount  int64  `json:"wechat_amount,omitempty"`
	Detail        string `json:"detail"`
	Repair        string `json:"repair,omitempty"` // the last repair's outcome
	RepairRun     int    `json:"repair_run,omitempty"`
	FoundRun      int    `json:"found_run"`
	SeenRun       int    `json:"seen_run"`
	FoundMs       int64  `json:"found_ms"`
	UpdatedMs     int64  `json:"updated_ms"`
	// ResolvedBy, ResolvedNote and ResolvedMs are set when an admin
	// resolved it by hand: who (ResolvedByAdmin), what they did (a WeChat
	// ticket ...) and when. A run that finds it again keeps it resolved.
	ResolvedBy   string `json:"resolved_by,omitempty"`
	ResolvedNote string `json:"resolved_note,omitempty"`
	ResolvedMs   int64  `json:"resolved_ms,omitempty"`

	confirm bool // the bill lacks it: ask WeChat before believing it
}

// discrepancyKey is the stable key of a discrepancy of a date.
func discrepancyKey(class, otn, orn string) string {
	if orn == "" {
		return class + ":" + otn
	}
	return class + ":" + otn + ":" + orn
}

// eventID is the id of a reconcile.* event of date: the discrepancy's key
// for reconcile.discrepancy, "resolved:" and the key for
// reconcile.resolved, "completed:" and the run for reconcile.completed.
func eventID(date, key string) string { return "reconcile:" + date + ":" + key }

// Store keys (see actors/store/reconcile.go).
func runKey(date string) []byte       { return []byte("c/r/" + date) }
func runPrefix() []byte               { return []byte("c/r/") }
func discPrefix(date string) []byte   { return []byte("c/d/" + date + "/") }
func discKey(date, key string) []byte { return []byte("c/d/" + date + "/" + key) }
func billPrefix(date string) []byte   { return []byte("c/b/" + date + "/") }
func billKey(b []byte, r *wxpay.TradeBillRow) []byte {
	b = append(b, r.OutTradeNo...)
	b = append(b, 0)
	switch r.TradeState {
	case wxpay.TradeStateSuccess:
		b = append(b, 'P')
	case wxpay.TradeStateRefund:
		b = append(b, 'R')
		b = append(b, r.OutRefundNo...)
	default: // REVOKED and anything else: one row per transaction
		b = append(b, 'X')
		b = append(b, r.TransactionID...)
	}
	return b
}

// keyOTN returns the out_trade_no of a spilled row's key (prefix stripped).
func keyOTN(k []byte) []byte {
	for i, c := range k {
		if c == 0 {
			return k[:i]
		}
	}
	return k
}

// The spill's row encoding: the row's fields that reconciliation and the
// analytics store use, as varints and length-prefixed strings (the
// out_trade_no and out_refund_no are in the key). About 150 bytes a row.

var errSpill = errors.New("reconcile: corrupt spilled row")

func appendRow(b []byte, r *wxpay.TradeBillRow) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	num(r.TradeTime.Unix())
	str(r.AppID)
	str(r.MchID)
	str(r.SubMchID)
	str(r.TransactionID)
	str(r.OutRefundNo)
	str(r.OpenID)
	str(r.TradeType)
	str(r.TradeState)
	str(r.BankType)
	str(r.Currency)
	num(r.SettlementTotal)
	num(r.Coupon)
	str(r.RefundID)
	num(r.Refund)
	num(r.RechargeCouponRefund)
	str(r.RefundType)
	str(r.RefundStatus)
	num(r.FeeMilliFen)
	num(r.RatePPM)
	num(r.Total)
	num(r.RefundRequested)
	return b
}

// decodeRow reads a spilled row into r; otn is the out_trade_no from its
// key. The strings are copies.
func decodeRow(otn string, b []byte, r *wxpay.TradeBillRow) error {
	bad := false
	str := func() string {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			bad = true
			return ""
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	num := func() int64 {
		v, k := binary.Varint(b)
		if k <= 0 {
			bad = true
			return 0
		}
		b = b[k:]
		return v
	}
	*r = wxpay.TradeBillRow{OutTradeNo: otn}
	r.TradeTime = time.Unix(num(), 0).In(wxpay.BillLocation)
	r.AppID, r.MchID, r.SubMchID, r.TransactionID = str(), str(), str(), str()
	r.OutRefundNo, r.OpenID, r.TradeType, r.TradeState = str(), str(), str(), str()
	r.BankType, r.Currency = str(), str()
	r.SettlementTotal, r.Coupon = num(), num()
	r.RefundID = str()
	r.Refund, r.RechargeCouponRefund = num(), num()
	r.RefundType, r.RefundStatus = str(), str()
	r.FeeMilliFen, r.RatePPM, r.Total, r.RefundRequested = num(), num(), num(), num()
	if bad || len(b) != 0 {
		return errSpill
	}
	return nil
}
