package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// ReserveStatus is the answer to a stock reservation.
type ReserveStatus uint8

// Reservation answers.
const (
	Reserved      ReserveStatus = iota // units held for the order
	SoldOut                            // not enough units left
	LimitExceeded                      // the buyer's per-buyer limit would be passed
	UnknownSKU                         // no such SKU in the catalogue
)

// ReserveResult is a reservation's outcome.
type ReserveResult struct {
	Status ReserveStatus
	Fresh  bool      // this call made or replaced the hold (false: it held these units already)
	SKU    store.SKU // the catalogue entry (price, description)
}

// SKUView is a SKU's catalogue entry with its live counts.
type SKUView struct {
	store.SKU
	Left     int64 `json:"left"`
	Reserved int64 `json:"reserved"`
	Sold     int64 `json:"sold"`
}

// Inventory is the registry of SKU actors: one actor per SKU serialises its
// reservations, so stock is never oversold at any concurrency. Each actor
// rebuilds its counts from the durable reservations when it starts.
// Safe for concurrent use.
type Inventory struct {
	sys    *System
	mu     sync.Mutex
	skus   map[string]*skuHandle
	remote atomic.Pointer[remoteHolder]
}

// StockRemote takes the stock messages of SKUs that another node owns
// (cluster mode). Reserve asks the owner for a durable hold and waits for
// its answer. Release and Commit must not block: the implementation
// delivers them to the owner, retrying until acknowledged.
type StockRemote interface {
	Owns(sku string) bool
	Reserve(ctx context.Context, sku, otn, openid string, qty int64, fast bool) (ReserveResult, error)
	Release(sku, otn string)
	Commit(sku, otn, openid string, qty int64)
}

type remoteHolder struct{ r StockRemote }

// SetStockRemote routes the reservations, releases and commits of SKUs
// this node does not own to r. Call it before serving traffic; without it
// every SKU is local.
func (inv *Inventory) SetStockRemote(r StockRemote) { inv.remote.Store(&remoteHolder{r}) }

// remoteFor returns the router for sku when another node owns it.
func (inv *Inventory) remoteFor(sku string) StockRemote {
	if h := inv.remote.Load(); h != nil && !h.r.Owns(sku) {
		return h.r
	}
	return nil
}

type skuHandle struct {
	pid  *actor.PID
	left atomic.Int64 // published after every change, for the sold-out fast path
}

func newInventory(s *System) *Inventory {
	return &Inventory{sys: s, skus: map[string]*skuHandle{}}
}

// Messages to SKU actors.
type (
	reserveMsg struct {
		otn, openid string
		qty         int64
		durable     bool // write the hold now (the order lives on another node)
	}
	settleMsg struct {
		otn, openid string
		qty         int64
		sold        bool
	}
	heldMsg    struct{ beforeMs int64 }
	releaseMsg struct{ otn string }
	commitMsg  struct {
		otn, openid string
		qty         int64
	}
	putSKUMsg struct{ sku store.SKU }
	getSKUMsg struct{}
)

// handle returns the SKU's actor, loading it from the store on first use.
// With create set, a SKU missing from the catalogue gets an empty actor
// (for Put).
func (inv *Inventory) handle(sku string, create bool) (*skuHandle, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if h := inv.skus[sku]; h != nil {
		return h, nil
	}
	cat, ok, err := inv.sys.store.GetSKU(sku)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if !ok && !create {
		return nil, ErrUnknownSKU
	}
	a := &skuActor{sys: inv.sys, cat: cat, known: ok, resv: map[string]store.Reservation{}, buyers: map[string]int64{}}
	a.cat.SKU = sku
	err = inv.sys.store.Reservations(sku, func(otn string, r store.Reservation) error {
		a.add(otn, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	h := &skuHandle{}
	a.h = h
	a.publish()
	h.pid = inv.sys.as.Root.Spawn(inv.sys.props(func() actor.Actor { return a }))
	inv.skus[sku] = h
	return h, nil
}

func (inv *Inventory) request(ctx context.Context, h *skuHandle, msg any) (any, error) {
	s := inv.sys
	if s.stopped.Load() {
		return nil, ErrStopped
	}
	if s.metrics.InFlight.Add(1) > s.cfg.MaxInFlight {
		s.metrics.InFlight.Add(-1)
		return nil, ErrOverloaded
	}
	defer s.metrics.InFlight.Add(-1)
	timeout := s.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	res, err := s.as.Root.RequestFuture(h.pid, msg, timeout).Result()
	if errors.Is(err, actor.ErrTimeout) {
		return nil, ErrTimeout
	}
	if err != nil {
		return nil, fmt.Errorf("actors: sku request: %w", err)
	}
	if e, ok := res.(error); ok {
		return nil, e
	}
	return res, nil
}

// Reserve holds qty units of sku for order otn, on this node. A repeat
// with the same buyer and quantity answers Reserved; one with others
// replaces the hold (only otn's order actor reserves for otn, one request
// at a time, so an earlier hold is one that never became an order). When
// fast is set and the SKU has fewer units left than asked, it answers
// SoldOut without a message to the actor (flash-sale losers).
func (inv *Inventory) Reserve(ctx context.Context, sku, otn, openid string, qty int64, fast bool) (ReserveResult, error) {
	return inv.reserveLocal(ctx, &reserveMsg{otn: otn, openid: openid, qty: qty}, sku, fast)
}

// ReserveDurable is Reserve for an order that lives on another node
// (cluster mode): the hold is written to this node's store before the
// answer, since the order's own write lands elsewhere. Settle ends it.
func (inv *Inventory) ReserveDurable(ctx context.Context, sku, otn, openid string, qty int64, fast bool) (ReserveResult, error) {
	return inv.reserveLocal(ctx, &reserveMsg{otn: otn, openid: openid, qty: qty, durable: true}, sku, fast)
}

// reserve is an order actor's reservation: at the SKU's owner.
func (inv *Inventory) reserve(ctx context.Context, m *reserveMsg, sku string, fast bool) (ReserveResult, error) {
	if r := inv.remoteFor(sku); r != nil {
		return r.Reserve(ctx, sku, m.otn, m.openid, m.qty, fast)
	}
	return inv.reserveLocal(ctx, m, sku, fast)
}

func (inv *Inventory) reserveLocal(ctx context.Context, m *reserveMsg, sku string, fast bool) (ReserveResult, error) {
	h, err := inv.handle(sku, false)
	if errors.Is(err, ErrUnknownSKU) {
		return ReserveResult{Status: UnknownSKU}, nil
	}
	if err != nil {
		return ReserveResult{}, err
	}
	if fast && h.left.Load() < m.qty {
		return ReserveResult{Status: SoldOut}, nil
	}
	res, err := inv.request(ctx, h, m)
	if err != nil {
		return ReserveResult{}, err
	}
	return *res.(*ReserveResult), nil
}

// Settle durably releases (sold false) or commits (sold true) the hold of
// an order on another node. It is idempotent; a nil error is the
// acknowledgement the sender retries for.
func (inv *Inventory) Settle(ctx context.Context, sku, otn, openid string, qty int64, sold bool) error {
	h, err := inv.handle(sku, false)
	if err != nil {
		return err
	}
	_, err = inv.request(ctx, h, &settleMsg{otn: otn, openid: openid, qty: qty, sold: sold})
	return err
}

// Held is a durable hold of an order on another node, not yet settled.
type Held struct {
	SKU, OutTradeNo, OpenID string
	Quantity                int64
	HeldMs                  int64
}

// HeldBefore lists the unsettled holds of orders on other nodes made before
// t, over every SKU in this node's catalogue (for reconciliation).
func (inv *Inventory) HeldBefore(ctx context.Context, t time.Time) ([]Held, error) {
	var skus []string
	if err := inv.sys.store.SKUs(func(k store.SKU) error { skus = append(skus, k.SKU); return nil }); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	var out []Held
	for _, sku := range skus {
		h, err := inv.handle(sku, false)
		if err != nil {
			return out, err
		}
		res, err := inv.request(ctx, h, &heldMsg{beforeMs: t.UnixMilli()})
		if err != nil {
			return out, err
		}
		out = append(out, *res.(*[]Held)...)
	}
	return out, nil
}

func (inv *Inventory) release(sku, otn string) {
	if r := inv.remoteFor(sku); r != nil {
		r.Release(sku, otn)
		return
	}
	if h, err := inv.handle(sku, false); err == nil {
		inv.sys.as.Root.Send(h.pid, &releaseMsg{otn: otn})
	}
}

func (inv *Inventory) commit(sku, otn, openid string, qty int64) {
	if r := inv.remoteFor(sku); r != nil {
		r.Commit(sku, otn, openid, qty)
		return
	}
	if h, err := inv.handle(sku, false); err == nil {
		inv.sys.as.Root.Send(h.pid, &commitMsg{otn: otn, openid: openid, qty: qty})
	}
}

// Put sets a SKU's catalogue entry durably.
func (inv *Inventory) Put(ctx context.Context, k store.SKU) (SKUView, error) {
	h, err := inv.handle(k.SKU, true)
	if err != nil {
		return SKUView{}, err
	}
	res, err := inv.request(ctx, h, &putSKUMsg{sku: k})
	if err != nil {
		return SKUView{}, err
	}
	return *res.(*SKUView), nil
}

// Get returns a SKU's entry and counts.
func (inv *Inventory) Get(ctx context.Context, sku string) (SKUView, error) {
	h, err := inv.handle(sku, false)
	if err != nil {
		return SKUView{}, err
	}
	res, err := inv.request(ctx, h, &getSKUMsg{})
	if err != nil {
		return SKUView{}, err
	}
	v := *res.(*SKUView)
	if !v.knownCatalogue() {
		return SKUView{}, ErrUnknownSKU
	}
	return v, nil
}

func (v *SKUView) knownCatalogue() bool { return v.UpdatedMs > 0 }

// Left returns the units a SKU has left, or false when it is not loaded.
func (inv *Inventory) Left(sku string) (int64, bool) {
	inv.mu.Lock()
	h := inv.skus[sku]
	inv.mu.Unlock()
	if h == nil {
		return 0, false
	}
	return h.left.Load(), true
}

func (inv *Inventory) stop() {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, h := range inv.skus {
		_ = inv.sys.as.Root.PoisonFuture(h.pid).Wait()
	}
}

// skuActor owns one SKU's counts. Reservations are made here in memory;
// they become durable in the order's CREATED write, and a restart rebuilds
// the counts from those writes.
type skuActor struct {
	sys      *System
	h        *skuHandle
	cat      store.SKU
	known    bool
	resv     map[string]store.Reservation // otn → reservation (held or sold)
	buyers   map[string]int64             // openid → units held or bought
	reserved int64
	sold     int64
}

func (a *skuActor) add(otn string, r store.Reservation) {
	a.resv[otn] = r
	a.buyers[r.OpenID] += r.Quantity
	if r.Sold {
		a.sold += r.Quantity
	} else {
		a.reserved += r.Quantity
	}
}

func (a *skuActor) left() int64 {
	l := a.cat.Stock - a.reserved - a.sold
	if l < 0 {
		return 0
	}
	return l
}

func (a *skuActor) publish() { a.h.left.Store(a.left()) }

func (a *skuActor) view() *SKUView {
	return &SKUView{SKU: a.cat, Left: a.left(), Reserved: a.reserved, Sold: a.sold}
}

func (a *skuActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *reserveMsg:
		ctx.Respond(a.reserve(m))
	case *settleMsg:
		ctx.Respond(a.settle(m))
	case *heldMsg:
		var out []Held
		for otn, r := range a.resv {
			if r.HeldMs > 0 && !r.Sold && r.HeldMs < m.beforeMs {
				out = append(out, Held{SKU: a.cat.SKU, OutTradeNo: otn, OpenID: r.OpenID, Quantity: r.Quantity, HeldMs: r.HeldMs})
			}
		}
		ctx.Respond(&out)
	case *releaseMsg:
		if r, ok := a.resv[m.otn]; ok && !r.Sold {
			a.drop(m.otn, r)
			a.publish()
		}
	case *commitMsg:
		r, ok := a.resv[m.otn]
		switch {
		case ok && r.Sold:
		case ok:
			a.reserved -= r.Quantity
			a.sold += r.Quantity
			r.Sold = true
			a.resv[m.otn] = r
		default:
			// Paid after its reservation was released (paid after close):
			// the money is real, so the units count as sold even if that
			// takes stock below zero; the order carries an alert.
			a.add(m.otn, store.Reservation{OpenID: m.openid, Quantity: m.qty, Sold: true})
		}
		a.publish()
	case *putSKUMsg:
		k := m.sku
		k.UpdatedMs = a.sys.cfg.Now().UnixMilli()
		// The entry and its sku.updated event in one durable write, so
		// analysts' stock figures follow the catalogue exactly.
		w := a.sys.store.NewWrite()
		w.PutSKU(k)
		w.AddEvent(&event.Event{
			EventID: "sku:" + k.SKU + ":" + strconv.FormatInt(k.UpdatedMs, 10), Type: event.SKUUpdated,
			TimeMs: k.UpdatedMs, SKU: k.SKU, Quantity: k.Stock, Amount: k.Price,
		})
		if err := w.Commit(); err != nil {
			ctx.Respond(fmt.Errorf("%w: %w", ErrStore, err))
			return
		}
		a.cat, a.known = k, true
		a.publish()
		ctx.Respond(a.view())
	case *getSKUMsg:
		ctx.Respond(a.view())
	}
}

func (a *skuActor) reserve(m *reserveMsg) any {
	if !a.known {
		return &ReserveResult{Status: UnknownSKU}
	}
	old, had := a.resv[m.otn]
	if had && (old.Sold || old.OpenID == m.openid && old.Quantity == m.qty) {
		return &ReserveResult{Status: Reserved, SKU: a.cat}
	}
	// A hold with other parameters never became an order (see Reserve):
	// the new request is checked as if it were gone, and replaces it.
	left, bought := a.cat.Stock-a.reserved-a.sold, a.buyers[m.openid]
	if had {
		left += old.Quantity
		if old.OpenID == m.openid {
			bought -= old.Quantity
		}
	}
	if left < m.qty {
		return &ReserveResult{Status: SoldOut, SKU: a.cat}
	}
	if a.cat.PerBuyerLimit > 0 && bought+m.qty > a.cat.PerBuyerLimit {
		return &ReserveResult{Status: LimitExceeded, SKU: a.cat}
	}
	r := store.Reservation{OpenID: m.openid, Quantity: m.qty}
	if m.durable {
		r.HeldMs = a.sys.cfg.Now().UnixMilli()
		w := a.sys.store.NewWrite()
		w.PutReservation(a.cat.SKU, m.otn, r)
		if err := w.Commit(); err != nil {
			a.sys.metrics.StoreErrors.Add(1)
			return fmt.Errorf("%w: hold %s: %w", ErrStore, m.otn, err)
		}
	}
	if had {
		a.drop(m.otn, old)
	}
	a.add(m.otn, r)
	a.publish()
	return &ReserveResult{Status: Reserved, Fresh: true, SKU: a.cat}
}

// settle applies a remote order's release or commit durably, then in
// memory. Repeats are no-ops.
func (a *skuActor) settle(m *settleMsg) any {
	r, ok := a.resv[m.otn]
	switch {
	case !m.sold && !ok, !m.sold && r.Sold, m.sold && ok && r.Sold:
		return &ReserveResult{Status: Reserved}
	}
	w := a.sys.store.NewWrite()
	if m.sold {
		if !ok {
			r = store.Reservation{OpenID: m.openid, Quantity: m.qty}
		}
		r.Sold = true
		w.PutReservation(a.cat.SKU, m.otn, r)
	} else {
		w.DeleteReservation(a.cat.SKU, m.otn)
	}
	if err := w.Commit(); err != nil {
		a.sys.metrics.StoreErrors.Add(1)
		return fmt.Errorf("%w: settle %s: %w", ErrStore, m.otn, err)
	}
	switch {
	case !m.sold:
		a.drop(m.otn, r)
	case ok:
		a.reserved -= r.Quantity
		a.sold += r.Quantity
		a.resv[m.otn] = r
	default:
		a.add(m.otn, r)
	}
	a.publish()
	return &ReserveResult{Status: Reserved}
}

func (a *skuActor) drop(otn string, r store.Reservation) {
	delete(a.resv, otn)
	a.reserved -= r.Quantity
	a.buyers[r.OpenID] -= r.Quantity
	if a.buyers[r.OpenID] <= 0 {
		delete(a.buyers, r.OpenID)
	}
}
