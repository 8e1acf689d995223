package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wxpayd/wxpayd/actors/event"
)

// Reconciliation's keys (package actors/reconcile owns every "c/" key; the
// order actors write the day index with their transitions):
//
//	d/<YYYY-MM-DD>/<out_trade_no>   day index: the order was paid, or had a refund requested, that Beijing day
//	c/dayindex                      marker: the day index covers every order record (BuildDayIndex ran)
//	c/r/<YYYY-MM-DD>                a date's reconciliation run record
//	c/d/<YYYY-MM-DD>/<key>          a discrepancy that reconciliation found
//	c/b/<YYYY-MM-DD>/<otn>\x00...   the bill rows a run spilled while downloading (deleted when done)
//
// The day index is what lets a reconciliation list "our" payments and
// refunds of one day without scanning every order: its entries are
// written in the same batch as the transition that earns them (IndexDay),
// so an order is in the index of a day exactly when its record says it
// was paid or had a refund requested that day.

var dayLocation = time.FixedZone("CST", 8*3600) // Beijing time: the days of WeChat's bills

// DayOf returns the Beijing date (YYYY-MM-DD) of the Unix millisecond ms.
func DayOf(ms int64) string { return time.UnixMilli(ms).In(dayLocation).Format("2006-01-02") }

func dayIndexPrefix(date string) []byte   { return []byte("d/" + date + "/") }
func dayIndexKey(date, otn string) []byte { return []byte("d/" + date + "/" + otn) }

var dayIndexMarker = []byte("c/dayindex")

// IndexDay adds e's order to the day index when e moves money: order.paid
// (the day of the payment) and order.refund_requested (the day the refund
// was asked for, which is the day WeChat's bill lists it). Call it for each
// event of a transition's write; other events are ignored.
func (w *Write) IndexDay(e *event.Event) {
	if w.err != nil || e.OutTradeNo == "" {
		return
	}
	switch e.Type {
	case event.OrderPaid, event.OrderRefundRequested:
		w.err = w.b.Set(dayIndexKey(DayOf(e.TimeMs), e.OutTradeNo), nil, nil)
	}
}

// indexOrderDays writes the day index entries an order record implies.
func (w *Write) indexOrderDays(o *Order) {
	if o.PaidMs > 0 {
		w.IndexDay(&event.Event{Type: event.OrderPaid, OutTradeNo: o.OutTradeNo, TimeMs: o.PaidMs})
	}
	for i := range o.Refunds {
		w.IndexDay(&event.Event{Type: event.OrderRefundRequested, OutTradeNo: o.OutTradeNo, TimeMs: o.Refunds[i].CreatedMs})
	}
}

// BuildDayIndex indexes every order record written before the day index
// existed, once: it returns at once when the marker says it ran. The
// entries it writes are the ones IndexDay writes (setting one again changes
// nothing), so it may run while the actors serve.
func (s *Store) BuildDayIndex() error {
	return s.backfillOrders(dayIndexMarker, []byte("1"), (*Write).indexOrderDays)
}

// backfillOrders runs index over every order record, once per marker: it
// returns at once when marker is set, else writes in batches (unsynced;
// the last one, which sets marker to value, is synced, and Pebble's WAL
// makes the earlier ones durable with it).
func (s *Store) backfillOrders(marker, value []byte, index func(*Write, *Order)) error {
	done, err := s.get(marker, func([]byte) error { return nil })
	if err != nil || done {
		return err
	}
	w := s.NewWrite()
	n := 0
	err = s.scanJSON([]byte("o/"), func(_, val []byte) error {
		var o Order
		if err := decodeOrder(val, &o); err != nil {
			return fmt.Errorf("store: backfill %s: decode order: %w", marker, err)
		}
		index(w, &o)
		if n++; n%4096 == 0 {
			if err := w.CommitRelaxed(); err != nil {
				return err
			}
			w = s.NewWrite()
		}
		return nil
	})
	if err != nil {
		w.Discard()
		return err
	}
	if w.err == nil {
		w.err = w.b.Set(marker, value, nil)
	}
	return w.Commit()
}

// Iter walks a key range in order. It is used by one goroutine and must be
// closed. Key and Value are valid until the next call to Next.
type Iter struct {
	it     *pebble.Iterator
	prefix []byte // stripped from Key, prepended by SeekGE
	pre    int
}

// First moves to the first key; false if there is none.
func (i *Iter) First() bool { return i.it.First() }

// Next moves to the next key; false at the end.
func (i *Iter) Next() bool { return i.it.Next() }

// SeekGE moves to the first key at or after prefix+k; false if none.
func (i *Iter) SeekGE(k []byte) bool {
	key := make([]byte, 0, len(i.prefix)+len(k))
	return i.it.SeekGE(append(append(key, i.prefix...), k...))
}

// Valid reports whether the iterator is on a key.
func (i *Iter) Valid() bool { return i.it.Valid() }

// Key returns the current key without the iterator's prefix.
func (i *Iter) Key() []byte { return i.it.Key()[i.pre:] }

// Value returns the current value.
func (i *Iter) Value() []byte { return i.it.Value() }

// Close releases the iterator and returns its error, if any. A second
// Close returns nil.
func (i *Iter) Close() error {
	if i.it == nil {
		return nil
	}
	err := i.it.Error()
	if cerr := i.it.Close(); err == nil {
		err = cerr
	}
	i.it = nil
	return err
}

// errReconKey: a reconciliation method was given a key outside "c/".
var errReconKey = errors.New("store: not a reconciliation key")

func reconKey(k []byte) bool { return len(k) > 2 && k[0] == 'c' && k[1] == '/' }

// DayOrders returns an iterator over the out_trade_no of the orders in the
// day index of date (YYYY-MM-DD), in out_trade_no order; Key is the
// out_trade_no.
func (s *Store) DayOrders(date string) (*Iter, error) {
	return s.iterPrefix(dayIndexPrefix(date))
}

// ReconIter returns an iterator over the reconciliation keys starting with
// prefix (which must start with "c/"); Key strips the prefix.
func (s *Store) ReconIter(prefix []byte) (*Iter, error) {
	if !reconKey(prefix) {
		return nil, errReconKey
	}
	return s.iterPrefix(prefix)
}

func (s *Store) iterPrefix(prefix []byte) (*Iter, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	p := append([]byte(nil), prefix...)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, fmt.Errorf("store: iterate %q: %w", prefix, err)
	}
	return &Iter{it: it, prefix: p, pre: len(p)}, nil
}

// GetRecon reads a reconciliation key with decode (which must not keep the
// bytes); false when it does not exist.
func (s *Store) GetRecon(key []byte, decode func([]byte) error) (bool, error) {
	if !reconKey(key) {
		return false, errReconKey
	}
	return s.get(key, decode)
}

// PutRecon sets a reconciliation key (which must start with "c/").
func (w *Write) PutRecon(key, val []byte) {
	if w.err != nil {
		return
	}
	if !reconKey(key) {
		w.err = errReconKey
		return
	}
	w.err = w.b.Set(key, val, nil)
}

// DeleteReconPrefix deletes every reconciliation key starting with prefix.
func (w *Write) DeleteReconPrefix(prefix []byte) {
	if w.err != nil {
		return
	}
	if !reconKey(prefix) {
		w.err = errReconKey
		return
	}
	w.err = w.b.DeleteRange(prefix, prefixEnd(prefix), nil)
}

// Publish adds an event to the outbox only: an event that is no order's
// transition (reconciliation's), so it takes no place in an order's
// history and no seq of its own. It is published like any other.
func (w *Write) Publish(e *event.Event) {
	if w.err != nil {
		return
	}
	w.scratch = event.Append(w.scratch[:0], e)
	w.s.mu.Lock()
	seq := w.s.outboxSeq.Add(1)
	w.s.pending[seq] = struct{}{}
	w.s.mu.Unlock()
	w.seqs = append(w.seqs, seq)
	w.events++
	w.err = w.b.Set(outboxKey(seq), w.scratch, nil)
}

// Len is the size of the write's batch so far, in bytes (to cut large
// writes into several).
func (w *Write) Len() int {
	if w.b == nil {
		return 0
	}
	return w.b.Len()
}
