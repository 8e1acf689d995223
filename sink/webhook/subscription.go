package webhook

import (
	"fmt"
	"strings"

	"github.com/wxpayd/wxpayd/actors/event"
)

// PaidAfterClose names, in a subscription, the payments for orders that
// had been closed or had failed: order.paid events whose alert begins with
// "paid after " (actors/machine.go writes "paid after CLOSED" and "paid
// after FAILED"). The delivered event is the order.paid itself; a
// subscription to order.paid already includes them.
const PaidAfterClose = "order.paid_after_close"

// paidAfterPrefix begins the alert of a payment for a closed or failed
// order (actors/machine.go, paid).
const paidAfterPrefix = "paid after "

// DefaultEvents are the events delivered when none are configured: what a
// shop acts on (ship, stop, refund).
var DefaultEvents = []string{event.OrderPaid, event.OrderRefunded, event.OrderRefundFailed, event.OrderClosed}

// subscribable are the names a subscription may list: every order event
// type, and PaidAfterClose.
var subscribable = []string{
	event.OrderCreated, event.OrderPrepaid, event.OrderPrepayFailed, event.OrderPaid, event.OrderClosed,
	event.OrderRefundRequested, event.OrderRefunded, event.OrderRefundFailed, event.OrderRefundAbnormal,
	event.OrderAlert, PaidAfterClose,
}

// Subscription is the set of events a shop receives. Its Match runs in
// the store's AddEvent on every transition; it is safe for concurrent use
// and allocates nothing.
type Subscription struct {
	types          map[string]bool
	paidAfterClose bool
	names          []string
}

// NewSubscription checks names (event types, or PaidAfterClose) and
// returns the subscription; no names means DefaultEvents.
func NewSubscription(names []string) (*Subscription, error) {
	if len(names) == 0 {
		names = DefaultEvents
	}
	s := &Subscription{types: map[string]bool{}}
	for _, n := range names {
		n = strings.TrimSpace(n)
		ok := false
		for _, k := range subscribable {
			ok = ok || n == k
		}
		if !ok {
			return nil, fmt.Errorf("%w: unknown event %q (one of %s)", ErrConfig, n, strings.Join(subscribable, ", "))
		}
		if n == PaidAfterClose {
			s.paidAfterClose = true
		} else {
			s.types[n] = true
		}
		s.names = append(s.names, n)
	}
	return s, nil
}

// Match tells whether e is delivered: an order event of a subscribed type,
// or a payment after close when PaidAfterClose is subscribed.
func (s *Subscription) Match(e *event.Event) bool {
	if e.OutTradeNo == "" {
		return false
	}
	if s.types[e.Type] {
		return true
	}
	return s.paidAfterClose && e.Type == event.OrderPaid && strings.HasPrefix(e.Alert, paidAfterPrefix)
}

// Names are the subscribed names, as configured.
func (s *Subscription) Names() []string { return append([]string(nil), s.names...) }
