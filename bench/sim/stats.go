package sim

import (
	"sort"
	"sync"
	"sync/atomic"
)

// stats are the simulator's counters. Every field is updated atomically;
// reasons sits behind its own mutex (rejections are the rare path).
type stats struct {
	requests      [numEndpoints]atomic.Uint64
	dropped       atomic.Uint64
	orders        atomic.Uint64
	paid          atomic.Uint64
	closed        atomic.Uint64
	expired       atomic.Uint64
	refunds       atomic.Uint64
	refundsDone   atomic.Uint64
	refundsClosed atomic.Uint64
	refundsAbnorm atomic.Uint64
	abnormalApply atomic.Uint64
	logins        atomic.Uint64
	v2Orders      atomic.Uint64
	payRejected   atomic.Uint64
	notifyCreated atomic.Uint64
	notifyAttempt atomic.Uint64
	notifyAcked   atomic.Uint64
	notifyRetried atomic.Uint64
	notifyGivenUp atomic.Uint64
	notifyFailed  atomic.Uint64 // failed attempts (non-2xx, error or timeout)
	faults        [numFaults]faultCounters
	apiFaults     [numFaultPoints][numAPIFaults]atomic.Uint64
	// bills (bill.go)
	billsGenerated atomic.Uint64
	billsSynthetic atomic.Uint64
	billDownloads  atomic.Uint64
	billCorrupted  atomic.Uint64

	mu      sync.Mutex
	reasons map[string]uint64 // rejected WeChat API requests by code
}

type faultCounters struct {
	sent, accepted, rejected, failed atomic.Uint64
}

// Endpoints counted in Stats.Requests.
type endpoint int

const (
	epPrepay endpoint = iota
	epQuery
	epClose
	epRefund
	epRefundQuery
	epCertificates
	epLogin
	epV2UnifiedOrder
	epAbnormalRefund
	epBill
	epBillDownload
	epV2OrderQuery
	epV2CloseOrder
	epV2Refund
	epV2RefundQuery
	epSimPay
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{
	"prepay", "query", "close", "refund", "refund_query", "certificates",
	"jscode2session", "v2_unifiedorder", "apply_abnormal_refund", "bill", "bill_download",
	"v2_orderquery", "v2_closeorder", "v2_refund", "v2_refundquery", "sim_pay", "other",
}

// Kinds of extra notification copies.
type faultKind int

const (
	faultNone faultKind = iota - 1
	faultDup
	faultTamper
	faultStale
	numFaults
)

var faultNames = [numFaults]string{"duplicate", "tampered", "stale"}

func (s *stats) reject(code string) {
	s.mu.Lock()
	if s.reasons == nil {
		s.reasons = make(map[string]uint64)
	}
	s.reasons[code]++
	s.mu.Unlock()
}

// Stats is the JSON document of GET /sim/v1/stats: enough for a load test
// to audit the end state. Counters only grow, except Pending.
type Stats struct {
	Orders          uint64            `json:"orders"`           // orders created (APIv3 and APIv2)
	V2Orders        uint64            `json:"v2_orders"`        // of which through /pay/unifiedorder
	Paid            uint64            `json:"paid"`             // orders paid through /sim/v1/pay
	Closed          uint64            `json:"closed"`           // orders closed by the merchant
	Expired         uint64            `json:"expired"`          // unpaid orders closed at time_expire
	Refunds         uint64            `json:"refunds"`          // refunds accepted
	RefundsDone     uint64            `json:"refunds_done"`     // refunds that reached SUCCESS
	RefundsClosed   uint64            `json:"refunds_closed"`   // refunds that ended CLOSED
	RefundsAbnormal uint64            `json:"refunds_abnormal"` // refunds that became ABNORMAL
	AbnormalApplied uint64            `json:"abnormal_applied"` // accepted apply-abnormal-refund calls
	Logins          uint64            `json:"logins"`           // successful jscode2session exchanges
	PayRejected     uint64            `json:"pay_rejected"`     // /sim/v1/pay answered 409
	Requests        map[string]uint64 `json:"requests"`         // WeChat API requests by endpoint
	Rejected        map[string]uint64 `json:"rejected"`         // WeChat API error answers by code, injected faults excepted
	Dropped         uint64            `json:"dropped"`          // answers lost on purpose (--drop-rate)
	Notifications   NotifyStats       `json:"notifications"`    // genuine notifications
	// APIFaults counts the injected API faults (--faults) by
	// "endpoint.kind", e.g. "refund.lost"; every pair is present.
	APIFaults map[string]uint64 `json:"faults"`
	// Faults counts the extra notification copies by kind (duplicate,
	// tampered, stale). The Go name predates APIFaults; its JSON key is
	// notify_faults.
	Faults map[string]Fault `json:"notify_faults"`
	Bills  BillStats        `json:"bills"`
	Live   LiveStats        `json:"live"` // current sizes of bounded stores
}

// BillStats counts the daily bills (bill.go).
type BillStats struct {
	Generated uint64 `json:"generated"` // days frozen from the ledger
	Synthetic uint64 `json:"synthetic"` // synthetic days registered
	Downloads uint64 `json:"downloads"` // files served
	Corrupted uint64 `json:"corrupted"` // of which corrupted on purpose (bill_download.corrupt)
}

// NotifyStats counts genuine notifications (one per payment or refund).
type NotifyStats struct {
	Created      uint64 `json:"created"`      // notifications created
	Sent         uint64 `json:"sent"`         // delivery attempts, retries included
	Acknowledged uint64 `json:"acknowledged"` // answered 2xx within the timeout
	Retried      uint64 `json:"retried"`      // attempts after the first
	Failed       uint64 `json:"failed"`       // attempts answered non-2xx, failed or timed out
	Pending      uint64 `json:"pending"`      // neither acknowledged nor given up
	GivenUp      uint64 `json:"given_up"`     // failed all 16 attempts
}

// Fault counts the extra copies of one kind. Accepted tampered or stale
// copies are a merchant bug; an audit expects them to be 0.
type Fault struct {
	Sent     uint64 `json:"sent"`
	Accepted uint64 `json:"accepted"` // answered 2xx
	Rejected uint64 `json:"rejected"` // answered non-2xx
	Failed   uint64 `json:"failed"`   // no answer (connection error or timeout)
}

// LiveStats are the current sizes of the bounded stores.
type LiveStats struct {
	Orders        int `json:"orders"`
	Scheduled     int `json:"scheduled"` // deliveries and refund completions waiting
	LoginCodes    int `json:"login_codes"`
	UnknownOrders int `json:"unknown_orders"` // called out_trade_nos with no order (the ledger's unknown_orders)
}

func (s *stats) snapshot() Stats {
	out := Stats{
		Orders: s.orders.Load(), V2Orders: s.v2Orders.Load(), Paid: s.paid.Load(),
		Closed: s.closed.Load(), Expired: s.expired.Load(), Refunds: s.refunds.Load(),
		RefundsDone: s.refundsDone.Load(), RefundsClosed: s.refundsClosed.Load(),
		RefundsAbnormal: s.refundsAbnorm.Load(), AbnormalApplied: s.abnormalApply.Load(),
		Logins: s.logins.Load(), PayRejected: s.payRejected.Load(),
		Dropped: s.dropped.Load(),
		Bills: BillStats{Generated: s.billsGenerated.Load(), Synthetic: s.billsSynthetic.Load(),
			Downloads: s.billDownloads.Load(), Corrupted: s.billCorrupted.Load()},
		Requests:  make(map[string]uint64, numEndpoints),
		Rejected:  map[string]uint64{},
		APIFaults: make(map[string]uint64, int(numFaultPoints)*int(numAPIFaults)),
		Faults:    make(map[string]Fault, numFaults),
	}
	for p := range s.apiFaults {
		for k := range s.apiFaults[p] {
			out.APIFaults[faultPointNames[p]+"."+apiFaultNames[k]] = s.apiFaults[p][k].Load()
		}
	}
	for i := range s.requests {
		out.Requests[endpointNames[i]] = s.requests[i].Load()
	}
	n := &out.Notifications
	n.Created = s.notifyCreated.Load()
	n.Sent = s.notifyAttempt.Load()
	n.Acknowledged = s.notifyAcked.Load()
	n.Retried = s.notifyRetried.Load()
	n.Failed = s.notifyFailed.Load()
	n.GivenUp = s.notifyGivenUp.Load()
	if done := n.Acknowledged + n.GivenUp; n.Created > done {
		n.Pending = n.Created - done
	}
	for i := range s.faults {
		f := &s.faults[i]
		out.Faults[faultNames[i]] = Fault{
			Sent: f.sent.Load(), Accepted: f.accepted.Load(), Rejected: f.rejected.Load(), Failed: f.failed.Load(),
		}
	}
	s.mu.Lock()
	codes := make([]string, 0, len(s.reasons))
	for c := range s.reasons {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		out.Rejected[c] = s.reasons[c]
	}
	s.mu.Unlock()
	return out
}
