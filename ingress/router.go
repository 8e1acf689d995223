package ingress

import (
	"context"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// Router takes every message the server sends to orders and SKUs. In
// single-node mode it is the local actors.System (see Local); in cluster
// mode it sends a message to the node owning the order's shard (the first
// two characters of out_trade_no) or the SKU, and answers
// actors.ErrUnavailable when that node cannot be reached. Implementations
// are safe for concurrent use.
type Router interface {
	// Request delivers an order message and waits for the order's reply.
	Request(ctx context.Context, msg actors.OrderMessage) (actors.Reply, error)
	// SoldOut tells without waiting whether sku has fewer than qty units
	// left, as far as this node knows (false when it does not know).
	SoldOut(sku string, qty int64) bool
	// PutSKU and GetSKU set and read a catalogue entry at its owner.
	PutSKU(ctx context.Context, k store.SKU) (actors.SKUView, error)
	GetSKU(ctx context.Context, sku string) (actors.SKUView, error)
	// History returns an order's events from the store that holds it.
	History(ctx context.Context, otn string) ([]event.Event, error)
}

// Local is the single-node Router: every order and SKU is in sys.
type Local struct{ Sys *actors.System }

// Request implements Router.
func (l Local) Request(ctx context.Context, msg actors.OrderMessage) (actors.Reply, error) {
	return l.Sys.Request(ctx, msg)
}

// SoldOut implements Router.
func (l Local) SoldOut(sku string, qty int64) bool {
	left, ok := l.Sys.Inventory().Left(sku)
	return ok && left < qty
}

// PutSKU implements Router.
func (l Local) PutSKU(ctx context.Context, k store.SKU) (actors.SKUView, error) {
	return l.Sys.Inventory().Put(ctx, k)
}

// GetSKU implements Router.
func (l Local) GetSKU(ctx context.Context, sku string) (actors.SKUView, error) {
	return l.Sys.Inventory().Get(ctx, sku)
}

// History implements Router.
func (l Local) History(_ context.Context, otn string) ([]event.Event, error) {
	return l.Sys.Store().History(otn)
}
