package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// What the audit reads: wxpaysim's ledger and per-order view, wxpayd's
// admin views of orders and SKUs, its admin list by shop order id, and two
// numbers from wxpayd's /metrics.

// ledger is GET /sim/v1/ledger: WeChat's side of every order.
type ledger struct {
	Orders []ledgerOrder `json:"orders"`
}

type ledgerOrder struct {
	OutTradeNo    string             `json:"out_trade_no"`
	TradeState    string             `json:"trade_state"`
	Total         int64              `json:"total"`
	OpenID        string             `json:"openid"`      // the prepay's payer.openid
	Description   string             `json:"description"` // the prepay's description
	Attach        string             `json:"attach"`      // the prepay's attach
	PaidTotal     int64              `json:"paid_total"`
	TransactionID string             `json:"transaction_id"`
	Refunded      int64              `json:"refunded"`
	Refunds       []ledgerRefund     `json:"refunds"`
	Calls         map[string]int     `json:"calls"`
	CallTimes     map[string][]int64 `json:"call_times"` // unix ms
}

type ledgerRefund struct {
	OutRefundNo string          `json:"out_refund_no"`
	RefundID    string          `json:"refund_id"`
	Amount      int64           `json:"amount"`
	Status      string          `json:"status"`
	CreateTime  json.RawMessage `json:"create_time"`
}

// paid reports whether WeChat took the buyer's money for the order.
func (o *ledgerOrder) paid() bool {
	return o.TransactionID != "" || o.TradeState == "SUCCESS" || o.TradeState == "REFUND"
}

// refundedOK is the sum of the order's SUCCESS refunds at WeChat.
func (o *ledgerOrder) refundedOK() int64 {
	var n int64
	for _, r := range o.Refunds {
		if r.Status == "SUCCESS" {
			n += r.Amount
		}
	}
	return n
}

// simOrderView is GET /sim/v1/orders/{otn}: the notifications and their
// delivery attempts.
type simOrderView struct {
	TradeState    string            `json:"trade_state"`
	TransactionID string            `json:"transaction_id"`
	Notifications []simNotification `json:"notifications"`
}

// simNotification is one notification copy and whether it was acknowledged.
type simNotification struct {
	ID           string `json:"id"`
	EventType    string `json:"event_type"`
	Kind         string `json:"kind"` // genuine, duplicate, tampered or stale
	Acknowledged bool   `json:"acknowledged"`
	GivenUp      bool   `json:"given_up"`
}

// simStats is the part of GET /sim/v1/stats the audit reads.
type simStats struct {
	Notifications struct {
		Created      uint64 `json:"created"`
		Acknowledged uint64 `json:"acknowledged"`
		Pending      uint64 `json:"pending"`
		GivenUp      uint64 `json:"given_up"`
	} `json:"notifications"`
	// NotifyFaults are the extra notification copies by kind (duplicate,
	// tampered, stale); APIFaults the injected API faults by endpoint.kind.
	NotifyFaults map[string]struct {
		Sent     uint64 `json:"sent"`
		Accepted uint64 `json:"accepted"`
		Rejected uint64 `json:"rejected"`
		Failed   uint64 `json:"failed"`
	} `json:"notify_faults"`
	APIFaults map[string]uint64 `json:"faults"`
	Requests  map[string]uint64 `json:"requests"`
	Rejected  map[string]uint64 `json:"rejected"`
	Dropped   uint64            `json:"dropped"`
}

// adminView is GET /admin/v1/orders/{otn}: wxpayd's record and history.
type adminView struct {
	Order  store.Order   `json:"order"`
	Events []event.Event `json:"events"`
}

// paidState reports whether a wxpayd state means the money was received.
func paidState(s store.State) bool {
	return s == store.StatePaid || s == store.StateRefunding || s == store.StateRefunded
}

// openState reports whether a wxpayd state still holds stock unsold.
func openState(s store.State) bool { return s == store.StateCreated || s == store.StatePrepaid }

// pendingRefund reports a refund whose outcome wxpayd still waits to hear.
func pendingRefund(r *store.Refund) bool { return r.Status == "PROCESSING" || r.Status == "" }

// unfinished reports a refund that keeps its order REFUNDING: pending, or
// ABNORMAL (WeChat holds it until the merchant applies for it).
func unfinished(r *store.Refund) bool { return pendingRefund(r) || r.Status == "ABNORMAL" }

func pendingRefunds(v *adminView) int {
	n := 0
	for i := range v.Order.Refunds {
		if pendingRefund(&v.Order.Refunds[i]) {
			n++
		}
	}
	return n
}

// refundSettled reports whether a wxpayd refund is in a final state that
// agrees with WeChat's (ABNORMAL on both sides is stable: it waits for the
// merchant). l may be nil.
func refundSettled(r *store.Refund, l *ledgerOrder) bool {
	switch r.Status {
	case "SUCCESS", "CLOSED", "FAILED":
		return true
	case "ABNORMAL":
		return l.refundStatus(r.OutRefundNo) == "ABNORMAL"
	}
	return false
}

// paidAfterClose reports an order paid after wxpayd had closed or failed
// it: money received for stock already released (wxpayd alerts on it).
func paidAfterClose(v *adminView) bool {
	gaveUp := false
	for _, e := range v.Events {
		switch e.Type {
		case event.OrderClosed, event.OrderPrepayFailed:
			gaveUp = true
		case event.OrderPaid:
			return gaveUp
		}
	}
	return false
}

// skuView is GET /admin/v1/skus/{sku}.
type skuView struct {
	SKU           string `json:"sku"`
	Price         int64  `json:"price"`
	Stock         int64  `json:"stock"`
	PerBuyerLimit int64  `json:"per_buyer_limit"`
	Left          int64  `json:"left"`
	Reserved      int64  `json:"reserved"`
	Sold          int64  `json:"sold"`
}

func (v skuView) String() string {
	return fmt.Sprintf("stock %d, sold %d, reserved %d, left %d", v.Stock, v.Sold, v.Reserved, v.Left)
}

// reader fetches the audit's views.
type reader struct{ s *stack }

func (rd reader) ledger(ctx context.Context) (*ledger, error) {
	a := rd.s.do(ctx, "GET", rd.s.simURL+"/sim/v1/ledger", "", nil)
	if !a.ok() {
		return nil, fmt.Errorf("GET /sim/v1/ledger: %s", a)
	}
	var l ledger
	if err := json.Unmarshal(a.body, &l); err != nil {
		return nil, fmt.Errorf("GET /sim/v1/ledger: %w", err)
	}
	return &l, nil
}

func (rd reader) stats(ctx context.Context) (*simStats, error) {
	a := rd.s.do(ctx, "GET", rd.s.simURL+"/sim/v1/stats", "", nil)
	if !a.ok() {
		return nil, fmt.Errorf("GET /sim/v1/stats: %s", a)
	}
	var st simStats
	if err := json.Unmarshal(a.body, &st); err != nil {
		return nil, fmt.Errorf("GET /sim/v1/stats: %w", err)
	}
	return &st, nil
}

func (rd reader) simOrder(ctx context.Context, otn string) (*simOrderView, []byte) {
	a := rd.s.do(ctx, "GET", rd.s.simURL+"/sim/v1/orders/"+otn, "", nil)
	if !a.ok() {
		return nil, a.body
	}
	var v simOrderView
	if json.Unmarshal(a.body, &v) != nil {
		return nil, a.body
	}
	return &v, a.body
}

// order reads one order; found is false on 404, err on anything else
// unreadable (after a few tries).
func (rd reader) order(ctx context.Context, otn string) (v *adminView, raw []byte, found bool, err error) {
	for attempt := 0; attempt < 10; attempt++ {
		a := rd.s.do(ctx, "GET", rd.s.base+"/admin/v1/orders/"+otn, rd.s.admin, nil)
		switch {
		case a.status == 404 && a.code() == "NOT_FOUND":
			return nil, a.body, false, nil
		case a.ok():
			var av adminView
			if err := json.Unmarshal(a.body, &av); err != nil {
				return nil, a.body, false, fmt.Errorf("order %s: %w", otn, err)
			}
			return &av, a.body, true, nil
		}
		err = fmt.Errorf("GET /admin/v1/orders/%s: %s", otn, a)
		if !sleepCtx(ctx, 500*time.Millisecond) {
			break
		}
	}
	return nil, nil, false, err
}

// orders reads many orders with a few workers.
func (rd reader) orders(ctx context.Context, otns []string) (map[string]*adminView, map[string]bool, map[string]error) {
	views, missing, errs := map[string]*adminView{}, map[string]bool{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan string)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for otn := range next {
				v, _, found, err := rd.order(ctx, otn)
				mu.Lock()
				switch {
				case err != nil:
					errs[otn] = err
				case !found:
					missing[otn] = true
				default:
					views[otn] = v
				}
				mu.Unlock()
			}
		}()
	}
	for _, otn := range otns {
		next <- otn
	}
	close(next)
	wg.Wait()
	return views, missing, errs
}

// shopOrder is GET /admin/v1/orders?shop_order_id=: the out_trade_nos of
// the orders wxpayd lists for a shop order id (one at most), after a few
// tries.
func (rd reader) shopOrder(ctx context.Context, id string) ([]string, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		a := rd.s.do(ctx, "GET", rd.s.base+"/admin/v1/orders?shop_order_id="+url.QueryEscape(id), rd.s.admin, nil)
		var list struct {
			Orders []store.Order `json:"orders"`
		}
		if a.ok() && json.Unmarshal(a.body, &list) == nil {
			otns := []string{}
			for _, o := range list.Orders {
				otns = append(otns, o.OutTradeNo)
			}
			return otns, nil
		}
		err = fmt.Errorf("GET /admin/v1/orders?shop_order_id=%s: %s", id, a)
		if !sleepCtx(ctx, 300*time.Millisecond) {
			break
		}
	}
	return nil, err
}

func (rd reader) sku(ctx context.Context, name string) (skuView, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		a := rd.s.do(ctx, "GET", rd.s.base+"/admin/v1/skus/"+name, rd.s.admin, nil)
		if a.ok() {
			var v skuView
			if err := json.Unmarshal(a.body, &v); err != nil {
				return v, err
			}
			return v, nil
		}
		err = fmt.Errorf("GET /admin/v1/skus/%s: %s", name, a)
		if !sleepCtx(ctx, 300*time.Millisecond) {
			break
		}
	}
	return skuView{}, err
}

// metric returns the sum of a metric's samples on wxpayd's /metrics.
func (rd reader) metric(ctx context.Context, name string) (float64, error) {
	a := rd.s.do(ctx, "GET", rd.s.base+"/metrics", "", nil)
	if !a.ok() {
		return 0, fmt.Errorf("GET /metrics: %s", a)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) || len(l) > len(name) && l[len(name)] != ' ' && l[len(name)] != '{' {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("/metrics has no %s", name)
	}
	return sum, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
