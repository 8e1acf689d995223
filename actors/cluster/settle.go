package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
)

// maxPending bounds the settlements waiting in memory. Beyond it new ones
// are dropped with a warning: the SKU's owner reconciles the hold later.
const maxPending = 100_000

// settler delivers release and commit messages for SKUs other nodes own,
// retrying each until its owner acknowledges it. A crash loses the queue;
// the owner's reconciliation (Node.reconcile) then settles the holds.
type settler struct {
	n       *Node
	mu      sync.Mutex
	pending []stockReq
	wake    chan struct{}
}

func newSettler(n *Node) *settler { return &settler{n: n, wake: make(chan struct{}, 1)} }

func (s *settler) add(r stockReq) {
	s.mu.Lock()
	if len(s.pending) >= maxPending {
		s.mu.Unlock()
		s.n.cfg.Logger.Warn("cluster: settlement queue full; the owner reconciles it", "sku", r.SKU, "out_trade_no", r.OTN)
		return
	}
	s.pending = append(s.pending, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Pending returns the settlements not yet acknowledged.
func (n *Node) Pending() int {
	n.stock.mu.Lock()
	defer n.stock.mu.Unlock()
	return len(n.stock.pending)
}

func (s *settler) run() {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-s.n.quit:
			return
		case <-s.wake:
		case <-time.After(backoff):
		}
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		s.mu.Unlock()
		var failed []stockReq
		for _, r := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), s.n.cfg.Timeout)
			var err error
			if s.n.Owns(r.SKU) { // the owner is this node (an order of another shard released here)
				err = s.n.sys.Inventory().Settle(ctx, r.SKU, r.OTN, r.OpenID, r.Qty, r.Sold)
			} else {
				_, _, err = s.n.stockCall(ctx, tSettle, r)
			}
			cancel()
			if err != nil {
				failed = append(failed, r)
			}
		}
		if len(failed) > 0 {
			s.mu.Lock()
			s.pending = append(failed, s.pending...)
			s.mu.Unlock()
			backoff = min(backoff*2, 5*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
	}
}

// reconcile settles the holds this node made for orders on other nodes
// that are older than ReconcileAfter: it asks the order's node for the
// order and releases (no order, CLOSED, FAILED) or commits (PAID and
// later) the hold. Unreachable nodes are asked again next round.
func (n *Node) reconcile() {
	every := max(n.cfg.ReconcileAfter/4, time.Second)
	for {
		select {
		case <-n.quit:
			return
		case <-time.After(every):
		}
		n.ReconcileOnce(context.Background())
	}
}

// ReconcileOnce runs one reconciliation round and returns how many holds
// it settled.
func (n *Node) ReconcileOnce(ctx context.Context) int {
	inv := n.sys.Inventory()
	held, err := inv.HeldBefore(ctx, time.Now().Add(-n.cfg.ReconcileAfter))
	if err != nil {
		n.cfg.Logger.Warn("cluster: reconcile: list holds", "err", err)
	}
	settled := 0
	for _, h := range held {
		c, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		r, err := n.Request(c, &actors.Get{OutTradeNo: h.OutTradeNo})
		if err == nil {
			var sold, release bool
			switch {
			case !r.Exists:
				release = true
			case r.Order.State == store.StateClosed || r.Order.State == store.StateFailed:
				release = true
			case r.Order.State == store.StatePaid || r.Order.State == store.StateRefunding || r.Order.State == store.StateRefunded:
				sold = true
			}
			if sold || release {
				err = inv.Settle(c, h.SKU, h.OutTradeNo, h.OpenID, h.Quantity, sold)
				if err == nil {
					settled++
				}
			}
		}
		cancel()
		if err != nil {
			n.cfg.Logger.Debug("cluster: reconcile", "out_trade_no", h.OutTradeNo, "err", err)
		}
	}
	if settled > 0 {
		n.cfg.Logger.Info("cluster: reconciled holds", "settled", settled)
	}
	return settled
}
