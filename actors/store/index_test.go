package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

var indexStates = []State{StateCreated, StatePrepaid, StatePaid, StateClosed, StateFailed, StateRefunding, StateRefunded}

// allOrders is the reference the indexes are held to: a scan of every
// order record.
func allOrders(t *testing.T, s *Store) []Order {
	t.Helper()
	var out []Order
	err := s.scanJSON([]byte("o/"), func(_, val []byte) error {
		var o Order
		if err := decodeOrder(val, &o); err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// expected filters and orders the scan as q asks: newest first, ties by
// out_trade_no.
func expected(all []Order, q OrderQuery) []string {
	var keep []Order
	for _, o := range all {
		if q.OpenID != "" && o.OpenID != q.OpenID || q.State != "" && o.State != q.State ||
			q.FromMs > 0 && o.CreatedMs < q.FromMs || q.ToMs > 0 && o.CreatedMs >= q.ToMs {
			continue
		}
		keep = append(keep, o)
	}
	slices.SortFunc(keep, func(a, b Order) int {
		if a.CreatedMs != b.CreatedMs {
			if a.CreatedMs > b.CreatedMs {
				return -1
			}
			return 1
		}
		if a.OutTradeNo < b.OutTradeNo {
			return -1
		}
		return 1
	})
	var out []string
	for _, o := range keep {
		out = append(out, o.OutTradeNo)
	}
	return out
}

// listAll pages through q to the end, checking each page's bounds, and
// returns the orders in the order they came.
func listAll(t *testing.T, s *Store, q OrderQuery, rng *rand.Rand) []Order {
	t.Helper()
	var out []Order
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("%+v: no end of pages", q)
		}
		q.Limit = 1 + rng.IntN(5)
		q.MaxScan = 0
		if q.State != "" && rng.IntN(2) == 0 {
			q.MaxScan = 1 + rng.IntN(4)
		}
		p, err := s.ListOrders(q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if len(p.Orders) > q.Limit {
			t.Fatalf("page of %d orders, limit %d", len(p.Orders), q.Limit)
		}
		if len(p.Orders) < q.Limit && p.Next != nil && q.MaxScan == 0 {
			t.Fatalf("a short page without a scan bound has a next cursor")
		}
		out = append(out, p.Orders...)
		if p.Next == nil {
			return out
		}
		q.After = p.Next
	}
}

// checkIndexes holds every listing to a scan of the records: the whole
// time index, each buyer's, with each state filter and a few time ranges,
// paged at random sizes; and no index entry without its record.
func checkIndexes(t *testing.T, s *Store, buyers []string, rng *rand.Rand) {
	t.Helper()
	all := allOrders(t, s)
	byOTN := map[string]Order{}
	for _, o := range all {
		byOTN[o.OutTradeNo] = o
	}
	queries := []OrderQuery{{}}
	for _, b := range buyers {
		queries = append(queries, OrderQuery{OpenID: b})
	}
	for _, base := range slices.Clone(queries) {
		for _, st := range indexStates {
			q := base
			q.State = st
			queries = append(queries, q)
		}
		for i := 0; i < 3; i++ {
			q := base
			q.FromMs = 1000 + rng.Int64N(40)
			q.ToMs = q.FromMs + rng.Int64N(30)
			if i == 0 {
				q.FromMs = 0
			}
			queries = append(queries, q)
		}
	}
	for _, q := range queries {
		got := listAll(t, s, q, rng)
		var ids []string
		for _, o := range got {
			if !reflect.DeepEqual(o, byOTN[o.OutTradeNo]) {
				t.Fatalf("%+v: listed %+v, record %+v", q, o, byOTN[o.OutTradeNo])
			}
			ids = append(ids, o.OutTradeNo)
		}
		if want := expected(all, q); !slices.Equal(ids, want) {
			t.Fatalf("%+v:\nlisted %v\nscan   %v", q, ids, want)
		}
	}
	// Every index entry names a record.
	for _, prefix := range []string{timeIndex, buyerIndex} {
		n := 0
		err := s.scanJSON([]byte(prefix), func(key, val []byte) error {
			n++
			rest := key[len(prefix):]
			if prefix == buyerIndex {
				rest = rest[2+int(rest[0])<<8+int(rest[1]):]
			}
			otn := string(rest[invTimeLen:])
			_, ok := byOTN[otn]
			if !ok {
				return fmt.Errorf("index entry %q names no record", key)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != len(all) {
			t.Fatalf("%s holds %d entries, %d orders exist", prefix, n, len(all))
		}
	}
	for _, o := range all {
		if o.ShopOrderID == "" {
			continue
		}
		if otn, ok, err := s.ShopOrder(o.ShopOrderID); err != nil || !ok || otn != o.OutTradeNo {
			t.Fatalf("shop order %s: %q %v %v", o.ShopOrderID, otn, ok, err)
		}
	}
}

// TestIndexesEqualAScanOfOrders writes random transitions of random orders
// in random batches (some discarded, as a crash before commit would), then
// holds every listing to a scan of the records, before and after the store
// is closed and opened again.
func TestIndexesEqualAScanOfOrders(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			dir := t.TempDir()
			s, err := Open(dir, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			buyers := []string{"oA", "oB", "oB2", "o-with/slash", "oC"}
			orders := map[string]Order{}
			for batch := 0; batch < 120; batch++ {
				w := s.NewWrite()
				staged := map[string]Order{}
				for n := 1 + rng.IntN(4); n > 0; n-- {
					otn := fmt.Sprintf("00ORDER%03d", rng.IntN(150))
					o, ok := staged[otn]
					if !ok {
						o, ok = orders[otn]
					}
					if !ok {
						o = Order{OutTradeNo: otn, OpenID: buyers[rng.IntN(len(buyers))], CreatedMs: 1000 + rng.Int64N(50),
							Total: 1, Currency: "CNY"}
						if rng.IntN(3) == 0 {
							o.ShopOrderID = "shop-" + otn
						}
					}
					o.Seq++
					o.State = indexStates[rng.IntN(len(indexStates))]
					w.PutOrder(&o)
					staged[otn] = o
				}
				if rng.IntN(10) == 0 {
					w.Discard() // lost in a crash before the commit
					continue
				}
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				for k, v := range staged {
					orders[k] = v
				}
			}
			checkIndexes(t, s, buyers, rng)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir, Options{}); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := allOrders(t, s); len(got) != len(orders) {
				t.Fatalf("%d orders after reopening, %d committed", len(got), len(orders))
			}
			checkIndexes(t, s, buyers, rng)
		})
	}
}

// TestIndexesAreBuiltForAnOlderStore: records written before the indexes
// existed are indexed when the store is next opened.
func TestIndexesAreBuiltForAnOlderStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// As an older version wrote them: the records alone, no marker.
	w := s.NewWrite()
	for i := 0; i < 2500; i++ {
		o := Order{OutTradeNo: fmt.Sprintf("00ORDER%03d", i), OpenID: fmt.Sprint("o", i%7), State: indexStates[i%len(indexStates)],
			CreatedMs: int64(1000 + i%40)}
		if i%5 == 0 {
			o.ShopOrderID = fmt.Sprint("shop-", i)
		}
		w.set(orderKey(o.OutTradeNo), func(b []byte) []byte { return appendOrder(b, &o) })
	}
	if w.err == nil {
		w.err = w.b.Delete([]byte(indexMarker), nil)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if p, err := s.ListOrders(OrderQuery{Limit: 10}); err != nil || len(p.Orders) != 0 {
		t.Fatalf("before reopening: %d orders, %v", len(p.Orders), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buyers []string
	for i := 0; i < 7; i++ {
		buyers = append(buyers, fmt.Sprint("o", i))
	}
	checkIndexes(t, s, buyers, rand.New(rand.NewPCG(3, 3)))
}

// TestListOrdersRefusesAnotherListingsCursor: a buyer cannot page through
// another buyer's orders with a cursor of theirs, nor with made-up bytes.
func TestListOrdersRefusesAnotherListingsCursor(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := s.NewWrite()
	for i, b := range []string{"alice", "alice", "bob", "al"} {
		w.PutOrder(&Order{OutTradeNo: fmt.Sprint("00ORDER00", i), OpenID: b, State: StatePaid, CreatedMs: int64(1000 + i)})
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	p, err := s.ListOrders(OrderQuery{OpenID: "alice", Limit: 1})
	if err != nil || len(p.Orders) != 1 || p.Next == nil {
		t.Fatalf("alice's first page: %+v %v", p, err)
	}
	for _, q := range []OrderQuery{
		{OpenID: "bob", After: p.Next}, {OpenID: "al", After: p.Next}, {After: p.Next},
		{OpenID: "alice", After: []byte("ib/")}, {OpenID: "alice", After: p.Next[:len(p.Next)-len("00ORDER000")]},
		{OpenID: "alice", After: []byte("it/whatever-it-is")},
	} {
		q.Limit = 5
		if _, err := s.ListOrders(q); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("%q with cursor %q: %v", q.OpenID, q.After, err)
		}
	}
	p2, err := s.ListOrders(OrderQuery{OpenID: "alice", Limit: 5, After: p.Next})
	if err != nil || len(p2.Orders) != 1 || p2.Next != nil || p2.Orders[0].OpenID != "alice" ||
		bytes.Equal([]byte(p2.Orders[0].OutTradeNo), []byte(p.Orders[0].OutTradeNo)) {
		t.Fatalf("alice's second page: %+v %v", p2, err)
	}
}
