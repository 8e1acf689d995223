package sim

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// WeChat's ledger, for audits: every order with what the merchant asked
// WeChat to collect (amount, payer, description, attach), its money (paid,
// refunded), its refunds, and the API calls the merchant made for it, so a
// chaos test can compare the merchant's books with WeChat's and check how it
// retried.
//
// A call is counted on its order when the request reached the endpoint and
// names the order: prepay and close by out_trade_no, query by out_trade_no
// or transaction_id, refund by out_trade_no or transaction_id, refund query
// through its refund's order. Faulted calls count too. A call for an
// out_trade_no WeChat does not know (a prepay refused or faulted before the
// order existed, a query of an unknown order) is kept apart and moves to the
// order when the order is created; until then it shows in the ledger's
// unknown_orders, not in its orders, with trade_state NOT_EXIST. At most
// MaxOrders such out_trade_nos are kept.

// MaxCallTimes is how many call times the ledger keeps per order and kind
// (the most recent ones).
const MaxCallTimes = 64

// TradeStateNotExist is the trade_state of the ledger's unknown_orders:
// out_trade_nos that were called but have no order at WeChat.
const TradeStateNotExist = "NOT_EXIST"

type callKind int

const (
	ckPrepay callKind = iota
	ckQuery
	ckClose
	ckRefund
	ckRefundQuery
	numCallKinds
)

// timedSlot is the index of a kind's call times, -1 when its times are not
// kept.
var timedSlot = [numCallKinds]int{ckPrepay: -1, ckQuery: 0, ckClose: 1, ckRefund: -1, ckRefundQuery: 2}

const numTimedKinds = 3

// callLog counts an order's calls. Guarded by the order's shard mu. The
// times are allocated on the first timed call, so an order only prepaid
// costs 24 bytes here.
type callLog struct {
	n     [numCallKinds]uint32
	times *[numTimedKinds]timeRing
}

// timeRing keeps the last MaxCallTimes times (Unix ms).
type timeRing struct {
	at   []int64
	next int // oldest entry once full
}

func (r *timeRing) add(ms int64) {
	if len(r.at) < MaxCallTimes {
		r.at = append(r.at, ms)
		return
	}
	r.at[r.next] = ms
	r.next = (r.next + 1) % MaxCallTimes
}

// list returns the times oldest first, in a new slice.
func (r *timeRing) list() []int64 {
	out := make([]int64, 0, len(r.at))
	out = append(out, r.at[r.next:]...)
	return append(out, r.at[:r.next]...)
}

func (c *callLog) add(k callKind, now time.Time) {
	if c.n[k] < math.MaxUint32 {
		c.n[k]++
	}
	if i := timedSlot[k]; i >= 0 {
		if c.times == nil {
			c.times = new([numTimedKinds]timeRing)
		}
		c.times[i].add(now.UnixMilli())
	}
}

func (c *callLog) timesOf(k callKind) []int64 {
	if c.times == nil {
		return []int64{}
	}
	return c.times[timedSlot[k]].list()
}

// recordCall counts a call for mchID/outTradeNo that could not be counted
// on its order while the handler held the shard (the order did not exist
// then, or the call was answered by a fault).
func (st *store) recordCall(mchID, outTradeNo string, k callKind, now time.Time) {
	key := orderKey(mchID, outTradeNo)
	sh := st.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if o := sh.orders[key]; o != nil {
		o.calls.add(k, now)
		return
	}
	g := sh.ghosts[key]
	if g == nil {
		if st.ghostCount.Add(1) > st.max {
			st.ghostCount.Add(-1)
			return
		}
		g = &callLog{}
		sh.ghosts[key] = g
	}
	g.add(k, now)
}

// adoptGhost moves the calls counted before o existed onto o. Caller holds
// the shard.
func (st *store) adoptGhost(sh *shard, key string, o *order) {
	if g := sh.ghosts[key]; g != nil {
		o.calls = *g
		delete(sh.ghosts, key)
		st.ghostCount.Add(-1)
	}
}

// Ledger is the JSON of GET /sim/v1/ledger.
type Ledger struct {
	Orders []LedgerOrder `json:"orders"` // WeChat's orders, sorted by out_trade_no
	// Unknown are the out_trade_nos called without an order at WeChat
	// (trade_state NOT_EXIST, calls only), sorted by out_trade_no.
	Unknown []LedgerOrder `json:"unknown_orders"`
}

// LedgerOrder is one order in WeChat's books.
type LedgerOrder struct {
	OutTradeNo  string `json:"out_trade_no"`
	TradeState  string `json:"trade_state"` // wxpay.TradeState*, or NOT_EXIST
	Total       int64  `json:"total"`
	OpenID      string `json:"openid"`      // the prepay's payer.openid (APIv2: openid)
	Description string `json:"description"` // the prepay's description (APIv2: body)
	Attach      string `json:"attach"`      // the prepay's attach
	// PayerClientIP is the first prepay's scene_info.payer_client_ip
	// (APIv2: spbill_create_ip); empty when it sent none.
	PayerClientIP string         `json:"payer_client_ip,omitempty"`
	PaidTotal     int64          `json:"paid_total"` // total if paid, else 0
	TransactionID string         `json:"transaction_id"`
	Refunded      int64          `json:"refunded"` // sum of SUCCESS refunds
	Refunds       []LedgerRefund `json:"refunds"`
	Calls         LedgerCalls    `json:"calls"`
	CallTimes     LedgerTimes    `json:"call_times"`
}

// LedgerRefund is one refund of a LedgerOrder.
type LedgerRefund struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundID    string `json:"refund_id"`
	Amount      int64  `json:"amount"`
	Status      string `json:"status"`
	CreateTime  string `json:"create_time"` // RFC 3339, +08:00
}

// LedgerCalls counts the requests for an order that reached each endpoint,
// faulted or not.
type LedgerCalls struct {
	Prepay      uint32 `json:"prepay"`
	Query       uint32 `json:"query"`
	Close       uint32 `json:"close"`
	Refund      uint32 `json:"refund"`
	RefundQuery uint32 `json:"refund_query"`
}

// LedgerTimes are the times (Unix ms, oldest first) of the last MaxCallTimes
// calls of each kind.
type LedgerTimes struct {
	Query       []int64 `json:"query"`
	Close       []int64 `json:"close"`
	RefundQuery []int64 `json:"refund_query"`
}

func (c *callLog) ledger() (LedgerCalls, LedgerTimes) {
	return LedgerCalls{
			Prepay: c.n[ckPrepay], Query: c.n[ckQuery], Close: c.n[ckClose], Refund: c.n[ckRefund],
			RefundQuery: c.n[ckRefundQuery],
		}, LedgerTimes{
			Query: c.timesOf(ckQuery), Close: c.timesOf(ckClose), RefundQuery: c.timesOf(ckRefundQuery),
		}
}

// ledger returns o's entry. Caller holds the shard.
func (o *order) ledger() LedgerOrder {
	l := LedgerOrder{
		OutTradeNo: o.outTradeNo, TradeState: o.state, Total: o.total, OpenID: o.openID, Description: o.desc,
		Attach: o.attach, PayerClientIP: o.payerIP, TransactionID: o.txnID, Refunded: o.refunded, Refunds: make([]LedgerRefund, 0, len(o.refunds)),
	}
	if o.txnID != "" {
		l.PaidTotal = o.total
	}
	for _, rf := range o.refunds {
		l.Refunds = append(l.Refunds, LedgerRefund{
			OutRefundNo: rf.outRefundNo, RefundID: rf.refundID, Amount: rf.amount, Status: rf.status,
			CreateTime: rfc3339(rf.created),
		})
	}
	l.Calls, l.CallTimes = o.calls.ledger()
	return l
}

func ghostLedger(key string, g *callLog) LedgerOrder {
	_, otn, _ := strings.Cut(key, "/")
	l := LedgerOrder{OutTradeNo: otn, TradeState: TradeStateNotExist, Refunds: []LedgerRefund{}}
	l.Calls, l.CallTimes = g.ledger()
	return l
}

// Ledger returns WeChat's books: every order and every unknown
// out_trade_no that was called, or only outTradeNo's when it is not empty.
// It locks one shard at a time, so under load it is a consistent view of
// each order, not of all orders at one instant.
func (s *Server) Ledger(outTradeNo string) Ledger {
	st := s.store
	now := s.clock.Now()
	out := Ledger{Orders: []LedgerOrder{}, Unknown: []LedgerOrder{}}
	collect := func(sh *shard, key string) {
		if o := sh.orders[key]; o != nil {
			o.expireIfDue(now, &s.stats)
			out.Orders = append(out.Orders, o.ledger())
		} else if g := sh.ghosts[key]; g != nil {
			out.Unknown = append(out.Unknown, ghostLedger(key, g))
		}
	}
	if outTradeNo != "" {
		key := orderKey(s.id.MchID, outTradeNo)
		sh := st.shardOf(key)
		sh.mu.Lock()
		collect(sh, key)
		sh.mu.Unlock()
		return out
	}
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for key := range sh.orders {
			collect(sh, key)
		}
		for key := range sh.ghosts {
			collect(sh, key)
		}
		sh.mu.Unlock()
	}
	for _, l := range [][]LedgerOrder{out.Orders, out.Unknown} {
		sort.Slice(l, func(i, j int) bool { return l[i].OutTradeNo < l[j].OutTradeNo })
	}
	return out
}

// simLedger serves GET /sim/v1/ledger[?out_trade_no=].
func (s *Server) simLedger(ctx *fasthttp.RequestCtx) {
	otn := string(ctx.QueryArgs().Peek("out_trade_no"))
	if otn != "" && !wxpay.ValidOutTradeNo(otn) {
		writeJSON(ctx, 400, simError{"PARAM_ERROR", "out_trade_no: 6 to 32 characters of [0-9A-Za-z_-|*]"})
		return
	}
	writeJSON(ctx, 200, s.Ledger(otn))
}
