package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Order indexes: the keys behind the order lists. PutOrder writes them in
// the same batch as the order's first record (seq 1, its order.created),
// so after any crash an index holds exactly the orders whose records
// exist. Orders are never deleted and an order's creation time, buyer and
// shop order id never change, so its index keys are written once and never
// move: a transition writes the order's record alone. A state filter reads
// the records (ListOrders bounds how many a page examines).
//
//	it/<inv created ms>/<out_trade_no>                  → (empty)  every order, newest first
//	ib/<len openid><openid><inv created ms>/<otn>       → (empty)  one buyer's orders, newest first
//	is/<shop_order_id>                                  → out_trade_no (checkout orders)
//	i/version                                           → indexVersion, once every record is indexed
//
// (Stores written before this held the state as the value of it/ and ib/
// entries; nothing reads those values.)
//
// <inv created ms> is 8 bytes, big-endian, of ^created_ms, so ascending
// keys run from the newest order to the oldest; ties are in out_trade_no
// order. <len openid> is 2 bytes, big-endian, so no openid's keys are a
// prefix of another's. (The slashes in the layout above are for reading:
// the keys have none after the prefix.)

// ErrBadCursor: a cursor that no page of this listing handed out.
var ErrBadCursor = errors.New("store: cursor does not belong to this listing")

const (
	timeIndex     = "it/"
	buyerIndex    = "ib/"
	shopIndex     = "is/"
	indexMarker   = "i/version"
	indexVersion  = "1"
	invTimeLen    = 8
	maxIndexedLen = 1<<16 - 1 // an openid longer than this is not indexed (sessions bound it far below)
)

func invTime(ms int64) []byte { return binary.BigEndian.AppendUint64(nil, ^uint64(ms)) }

func timePrefix() []byte { return []byte(timeIndex) }

func buyerPrefix(openid string) []byte { return appendBuyerPrefix(nil, openid) }

func appendBuyerPrefix(b []byte, openid string) []byte {
	b = append(b, buyerIndex...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(openid)))
	return append(b, openid...)
}

// appendIndexKey appends the rest of an index key after its prefix.
func appendIndexKey(b []byte, createdMs int64, otn string) []byte {
	b = binary.BigEndian.AppendUint64(b, ^uint64(createdMs))
	return append(b, otn...)
}

func shopKey(shopOrderID string) []byte { return []byte(shopIndex + shopOrderID) }

// putIndexes writes o's index entries into the write's batch, once, with
// the order's first record; the keys are built in one stack buffer (the
// batch copies them).
func (w *Write) putIndexes(o *Order) {
	if w.err != nil {
		return
	}
	var buf [160]byte
	k := appendIndexKey(append(buf[:0], timeIndex...), o.CreatedMs, o.OutTradeNo)
	if w.err = w.b.Set(k, nil, nil); w.err != nil {
		return
	}
	if o.OpenID != "" && len(o.OpenID) <= maxIndexedLen {
		k = appendIndexKey(appendBuyerPrefix(buf[:0], o.OpenID), o.CreatedMs, o.OutTradeNo)
		if w.err = w.b.Set(k, nil, nil); w.err != nil {
			return
		}
	}
	if o.ShopOrderID != "" {
		k = append(append(buf[:0], shopIndex...), o.ShopOrderID...)
		w.err = w.b.Set(k, append(k[len(k):], o.OutTradeNo...), nil)
	}
}

// buildIndexes indexes every order record, once: stores written before the
// indexes existed get them when they are first opened by a version that
// keeps them. It runs in Open, before anything else writes.
func (s *Store) buildIndexes() error {
	return s.backfillOrders([]byte(indexMarker), []byte(indexVersion), func(w *Write, o *Order) { w.putIndexes(o) })
}

// OrderQuery selects a page of orders, newest first.
type OrderQuery struct {
	// OpenID lists one buyer's orders (the buyer index); empty, every
	// order (the time index).
	OpenID string
	// State keeps only orders in this state; empty keeps every state.
	State State
	// FromMs and ToMs keep orders created in [FromMs, ToMs), Unix ms; 0
	// is no bound.
	FromMs, ToMs int64
	// After is the cursor: the Next of the previous page (nil: start from
	// the newest). It must come from a page of the same OpenID.
	After []byte
	// Limit is the most orders a page holds (at least 1).
	Limit int
	// MaxScan bounds the index entries a page examines (0: no bound). With
	// a State filter a page may end short of Limit with Next set: the
	// examined entries ran out before the orders did.
	MaxScan int
}

// OrderPage is one page of a listing.
type OrderPage struct {
	Orders []Order
	// Next is the cursor of the following page; nil when the listing is
	// done. It is an index key: opaque to callers, owned by them.
	Next []byte
}

// ListOrders returns a page of orders as q selects them, read from one
// snapshot: each order as its record stands at that moment.
func (s *Store) ListOrders(q OrderQuery) (OrderPage, error) {
	if s.closed.Load() {
		return OrderPage{}, ErrClosed
	}
	prefix := timePrefix()
	if q.OpenID != "" {
		prefix = buyerPrefix(q.OpenID)
	}
	if q.After != nil && (!bytes.HasPrefix(q.After, prefix) || len(q.After) <= len(prefix)+invTimeLen) {
		return OrderPage{}, ErrBadCursor
	}
	if q.Limit < 1 {
		q.Limit = 1
	}
	lower, upper := prefix, prefixEnd(prefix)
	if q.ToMs > 0 {
		// created ≤ ToMs-1 ⇔ ^created ≥ ^(ToMs-1)
		lower = append(append([]byte(nil), prefix...), invTime(q.ToMs-1)...)
	}
	if q.FromMs > 0 {
		// created ≥ FromMs ⇔ ^created ≤ ^FromMs < ^FromMs+1 (no overflow: FromMs > 0)
		upper = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), ^uint64(q.FromMs)+1)
	}
	if q.After != nil {
		if after := append(append([]byte(nil), q.After...), 0); bytes.Compare(after, lower) > 0 {
			lower = after // the first key after the cursor
		}
	}
	var page OrderPage
	if bytes.Compare(lower, upper) >= 0 {
		return page, nil
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return OrderPage{}, fmt.Errorf("store: list orders: %w", err)
	}
	defer it.Close()
	scanned := 0
	for valid := it.First(); valid; {
		key := it.Key()
		scanned++
		o, ok, err := snapOrder(snap, key[len(prefix)+invTimeLen:])
		if err != nil {
			return OrderPage{}, err
		}
		if !ok {
			return OrderPage{}, fmt.Errorf("store: index entry %q without its order record", key)
		}
		if q.State == "" || o.State == q.State {
			page.Orders = append(page.Orders, o)
			if len(page.Orders) == q.Limit {
				last := append([]byte(nil), key...)
				if it.Next() {
					page.Next = last
				}
				break
			}
		}
		if q.MaxScan > 0 && scanned >= q.MaxScan {
			last := append([]byte(nil), key...)
			if it.Next() {
				page.Next = last
			}
			break
		}
		valid = it.Next()
	}
	if err := it.Error(); err != nil {
		return OrderPage{}, fmt.Errorf("store: list orders: %w", err)
	}
	return page, nil
}

func snapOrder(snap *pebble.Snapshot, otn []byte) (Order, bool, error) {
	key := append([]byte("o/"), otn...)
	val, closer, err := snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("store: get %q: %w", key, err)
	}
	defer closer.Close()
	var o Order
	if err := decodeOrder(val, &o); err != nil {
		return Order{}, false, fmt.Errorf("store: decode %q: %w", key, err)
	}
	return o, true, nil
}

// ShopOrder returns the out_trade_no of the order a shop created under
// shopOrderID through the checkout API.
func (s *Store) ShopOrder(shopOrderID string) (otn string, ok bool, err error) {
	ok, err = s.get(shopKey(shopOrderID), func(b []byte) error { otn = string(b); return nil })
	return otn, ok, err
}
