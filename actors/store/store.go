// Package store is wxpayd's durable state on Pebble: order records, their
// event history, the outbox of events not yet confirmed by Kafka, stock
// reservations and the SKU catalogue.
//
// Every transition is one Write: the order record, its events (history and
// outbox) and its reservation change, committed as one batch with fsync.
// Pebble group-commits concurrent synced batches, so many order actors
// share each fsync. Nothing is acknowledged before Commit returns.
//
// Key layout (prefixes, order numbers and SKUs are ASCII; <seq> is 8 raw
// bytes, big-endian, so keys sort by number):
//
//	o/<out_trade_no>                order record
//	h/<out_trade_no>/<seq>          event history (seq of the order)
//	x/<seq>                         outbox: events waiting for the relay (seq of the store)
//	a/<out_trade_no>                active orders (non-final): timers resume from these
//	r/<sku>/<out_trade_no>          stock reservations
//	k/<sku>                         SKU catalogue
//	it/, ib/, is/, i/version        order indexes behind the order lists (index.go)
//	w/<seq>, wt/<seq>, wd/<id>      webhook queue, its retry schedule, dead letters (webhook.go)
//	d/<date>/<out_trade_no>         day index of payments and refunds; c/... reconciliation (reconcile.go)
//
// A Store is safe for concurrent use. Writes to one order must come from
// its owner (the order actor); the store does not lock per order.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/wxpayd/wxpayd/actors/event"
)

// ErrClosed: the store was closed.
var ErrClosed = errors.New("store: closed")

// Options tune the store. The zero value is the default.
type Options struct {
	// CacheBytes is Pebble's block cache for table data (default 64 MiB).
	// The cache made is larger by two memtables, which Pebble reserves in
	// it while they live.
	CacheBytes int64
	// NoSync turns off fsync; for benchmarks that measure everything else.
	NoSync bool
	// SyncInterval is the least time between two WAL fsyncs while at
	// least syncBusy writes are committing (default 500 µs; negative: sync
	// as soon as the previous sync ends). Commits that arrive meanwhile
	// wait and share the next fsync. With fewer writers there is nobody to
	// wait for, and fsyncs are not delayed.
	SyncInterval time.Duration
	// Webhook selects the events also queued for webhook delivery (w/,
	// webhook.go); it runs in AddEvent, so it must be fast and safe for
	// concurrent use. Nil queues none.
	Webhook func(*event.Event) bool
}

// Store is the durable state of one wxpayd node (or shard).
type Store struct {
	db     *pebble.DB
	cache  *pebble.Cache
	wopts  *pebble.WriteOptions
	closed atomic.Bool

	committing atomic.Int64 // synced commits in progress

	// Outbox sequence numbers are assigned when a Write is built and become
	// visible when it commits; commits finish out of order. pending holds
	// the assigned, uncommitted ones so the relay never reads past the
	// lowest of them (and so never skips an event committed late).
	outboxSeq atomic.Uint64
	mu        sync.Mutex
	pending   map[uint64]struct{}
	backlog   atomic.Int64
	wake      chan struct{}

	hooks webhookQueue // webhook.go
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 500 * time.Microsecond
	}
	cache := pebble.NewCache(o.CacheBytes + 2*memTableBytes)
	s := &Store{cache: cache, wopts: pebble.Sync, pending: map[uint64]struct{}{}, wake: make(chan struct{}, 1)}
	s.hooks.match, s.hooks.wake = o.Webhook, make(chan struct{}, 1)
	po := pebbleOptions(cache)
	if every := o.SyncInterval; every > 0 {
		po.WALMinSyncInterval = func() time.Duration {
			if s.committing.Load() >= syncBusy {
				return every
			}
			return 0
		}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.db = db
	if o.NoSync {
		s.wopts = pebble.NoSync
	}
	if err := s.loadOutboxState(); err != nil {
		_ = db.Close()
		cache.Unref()
		return nil, err
	}
	if err := s.loadWebhookState(); err != nil {
		_ = db.Close()
		cache.Unref()
		return nil, err
	}
	if err := s.buildIndexes(); err != nil {
		_ = db.Close()
		cache.Unref()
		return nil, err
	}
	return s, nil
}

const memTableBytes = 32 << 20

// syncBusy is how many concurrent commits make fsyncs wait SyncInterval.
// Under a notification storm fsyncs were an eighth of the CPU on this VM,
// each carrying few commits; spacing them 500 µs apart cut the CPU per
// acknowledgement by about a quarter (interleaved BenchmarkNotifyAck
// runs). At two buyers at a time the same delay only added latency
// (prepay's own p50 1.2 → 2.6 ms), so it applies under load alone. Every
// commit still returns only after its fsync.
const syncBusy = 4

// pebbleOptions tunes Pebble for wxpayd's load: many small synced writes
// and point reads of order records when a passivated order wakes up.
//   - Bloom filters on every level, L0 included: activating an order is a
//     Get, and without filters each Get searches every L0 table and level
//     (it was a tenth of a notification's CPU time).
//   - A 32 MiB memtable: fewer, larger flushes, so fewer L0 tables and
//     less compaction work per write (compaction was a fifth of the CPU
//     time of a notification storm with the 4 MiB default). Pebble
//     reserves memtables' memory in the block cache, so Open makes the
//     cache larger by two of them: the live one and one being flushed
//     (with a 64 MiB cache and a 64 MiB memtable nothing stayed cached).
func pebbleOptions(cache *pebble.Cache) *pebble.Options {
	o := &pebble.Options{
		Cache:        cache,
		Logger:       quietLogger{},
		MemTableSize: memTableBytes,
	}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

// Close flushes and closes the store. It is idempotent.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := s.db.Close()
	s.cache.Unref()
	return err
}

// Key builders.
func orderKey(otn string) []byte            { return []byte("o/" + otn) }
func activeKey(otn string) []byte           { return []byte("a/" + otn) }
func skuKey(sku string) []byte              { return []byte("k/" + sku) }
func reservationKey(sku, otn string) []byte { return []byte("r/" + sku + "/" + otn) }
func historyKey(otn string, seq uint64) []byte {
	b := make([]byte, 0, 2+len(otn)+1+16)
	b = append(b, "h/"...)
	b = append(b, otn...)
	b = append(b, '/')
	return binary.BigEndian.AppendUint64(b, seq)
}
func outboxKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("x/"), seq) }

// prefixEnd returns the first key after every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (s *Store) getJSON(key []byte, v any) (bool, error) {
	return s.get(key, func(b []byte) error { return json.Unmarshal(b, v) })
}

// get reads key's value with decode (which must not keep the bytes).
func (s *Store) get(key []byte, decode func([]byte) error) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: get %q: %w", key, err)
	}
	defer closer.Close()
	if err := decode(val); err != nil {
		return false, fmt.Errorf("store: decode %q: %w", key, err)
	}
	return true, nil
}

// GetOrder loads an order record.
func (s *Store) GetOrder(otn string) (Order, bool, error) {
	var o Order
	ok, err := s.get(orderKey(otn), func(b []byte) error { return decodeOrder(b, &o) })
	return o, ok, err
}

// GetSKU loads a catalogue entry.
func (s *Store) GetSKU(sku string) (SKU, bool, error) {
	var k SKU
	ok, err := s.getJSON(skuKey(sku), &k)
	return k, ok, err
}

// PutSKU writes a catalogue entry durably.
func (s *Store) PutSKU(k SKU) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.Set(skuKey(k.SKU), appendSKU(nil, &k), s.wopts); err != nil {
		return fmt.Errorf("store: put sku %q: %w", k.SKU, err)
	}
	return nil
}

// SKUs calls fn for every catalogue entry.
func (s *Store) SKUs(fn func(SKU) error) error {
	return s.scanJSON([]byte("k/"), func(_ []byte, val []byte) error {
		var k SKU
		if err := json.Unmarshal(val, &k); err != nil {
			return fmt.Errorf("store: decode sku: %w", err)
		}
		return fn(k)
	})
}

// Reservations calls fn for every reservation of sku.
func (s *Store) Reservations(sku string, fn func(otn string, r Reservation) error) error {
	prefix := []byte("r/" + sku + "/")
	return s.scanJSON(prefix, func(key, val []byte) error {
		var r Reservation
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("store: decode reservation: %w", err)
		}
		return fn(string(key[len(prefix):]), r)
	})
}

// ActiveOrders calls fn with the out_trade_no of every non-final order.
func (s *Store) ActiveOrders(fn func(otn string) error) error {
	return s.scanJSON([]byte("a/"), func(key, _ []byte) error { return fn(string(key[2:])) })
}

// History returns an order's events in seq order.
func (s *Store) History(otn string) ([]event.Event, error) {
	var out []event.Event
	err := s.scanJSON([]byte("h/"+otn+"/"), func(_, val []byte) error {
		e, err := event.Decode(val)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// CountOrders returns how many order records exist (a full scan; for tests
// and operators, not the hot path).
func (s *Store) CountOrders() (int, error) {
	n := 0
	err := s.scanJSON([]byte("o/"), func(_, _ []byte) error { n++; return nil })
	return n, err
}

func (s *Store) scanJSON(prefix []byte, fn func(key, val []byte) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("store: iterate %q: %w", prefix, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// Write is one atomic, durable change: an order transition with its events
// and reservation change. Build it with NewWrite, then Commit or Discard.
// A Write is used by one goroutine.
type Write struct {
	s       *Store
	b       *pebble.Batch
	seqs    []uint64
	events  int
	hooks   int // webhook entries queued (webhook.go)
	scratch []byte
	err     error
}

// NewWrite starts a Write.
func (s *Store) NewWrite() *Write {
	w := &Write{s: s, b: s.db.NewBatch()}
	if p, ok := scratchPool.Get().(*[]byte); ok {
		w.scratch = (*p)[:0]
	}
	return w
}

// scratchPool keeps the Writes' encoding buffers: the batch copies every
// value, so a buffer is free again once its Write ends. Buffers that grew
// past maxPooledScratch (a large catalogue entry) are left to the GC.
var scratchPool sync.Pool

const maxPooledScratch = 16 << 10

// set writes key with the value enc appends; the batch copies it, so the
// scratch buffer is reused across the write's records.
func (w *Write) set(key []byte, enc func([]byte) []byte) {
	if w.err != nil {
		return
	}
	w.scratch = enc(w.scratch[:0])
	w.err = w.b.Set(key, w.scratch, nil)
}

// PutOrder writes the order record, and keeps the active index and the
// order indexes (index.go) in step with its state.
func (w *Write) PutOrder(o *Order) {
	w.set(orderKey(o.OutTradeNo), func(b []byte) []byte { return appendOrder(b, o) })
	if w.err != nil {
		return
	}
	if o.State.Final() {
		w.err = w.b.Delete(activeKey(o.OutTradeNo), nil)
	} else {
		w.err = w.b.Set(activeKey(o.OutTradeNo), nil, nil)
	}
	if o.Seq <= 1 { // the order's first record (its order.created) indexes it, once
		w.putIndexes(o)
	}
}

// AddEvent appends an event to the order's history and to the outbox, and
// to the webhook queue when the event is subscribed (Options.Webhook).
func (w *Write) AddEvent(e *event.Event) {
	if w.err != nil {
		return
	}
	w.scratch = event.Append(w.scratch[:0], e)
	b := w.scratch
	if e.OutTradeNo != "" {
		if err := w.b.Set(historyKey(e.OutTradeNo, e.Seq), b, nil); err != nil {
			w.err = err
			return
		}
	}
	// Assign and register under one lock: ReadOutbox must never see a
	// sequence number that is assigned but not yet pending.
	w.s.mu.Lock()
	seq := w.s.outboxSeq.Add(1)
	w.s.pending[seq] = struct{}{}
	w.s.mu.Unlock()
	w.seqs = append(w.seqs, seq)
	w.events++
	w.err = w.b.Set(outboxKey(seq), b, nil)
	w.queueWebhook(e, seq)
}

// PutSKU writes a catalogue entry (with its sku.updated event, added by
// the caller, in the same write).
func (w *Write) PutSKU(k SKU) {
	w.set(skuKey(k.SKU), func(b []byte) []byte { return appendSKU(b, &k) })
}

// PutReservation writes sku's reservation for the order.
func (w *Write) PutReservation(sku, otn string, r Reservation) {
	w.set(reservationKey(sku, otn), func(b []byte) []byte { return appendReservation(b, &r) })
}

// DeleteReservation removes the order's reservation of sku.
func (w *Write) DeleteReservation(sku, otn string) {
	if w.err == nil {
		w.err = w.b.Delete(reservationKey(sku, otn), nil)
	}
}

// Commit applies the write with fsync (unless the store is NoSync) and
// returns only when it is durable.
func (w *Write) Commit() error {
	defer w.release()
	if w.err != nil {
		return w.err
	}
	if w.s.closed.Load() {
		return ErrClosed
	}
	w.s.committing.Add(1)
	err := w.b.Commit(w.s.wopts)
	w.s.committing.Add(-1)
	if err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	w.s.backlog.Add(int64(w.events))
	w.s.hooks.committed(w.hooks)
	return nil
}

// CommitRelaxed applies the write without waiting for fsync. It is for
// audit records whose loss in a crash costs no money (rejected
// notifications); never for a transition.
func (w *Write) CommitRelaxed() error {
	defer w.release()
	if w.err != nil {
		return w.err
	}
	if w.s.closed.Load() {
		return ErrClosed
	}
	if err := w.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	w.s.backlog.Add(int64(w.events))
	w.s.hooks.committed(w.hooks)
	return nil
}

// Discard drops an uncommitted write.
func (w *Write) Discard() { w.release() }

func (w *Write) release() {
	if w.b == nil {
		return
	}
	if len(w.seqs) > 0 {
		w.s.mu.Lock()
		for _, q := range w.seqs {
			delete(w.s.pending, q)
		}
		w.s.mu.Unlock()
		select {
		case w.s.wake <- struct{}{}:
		default:
		}
		w.s.hooks.signal(w.hooks)
	}
	_ = w.b.Close()
	w.b = nil
	if c := cap(w.scratch); c > 0 && c <= maxPooledScratch {
		b := w.scratch[:0]
		w.scratch = nil
		scratchPool.Put(&b)
	}
}

func (s *Store) loadOutboxState() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte("x/"), UpperBound: prefixEnd([]byte("x/"))})
	if err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if it.Last() {
		s.outboxSeq.Store(binary.BigEndian.Uint64(it.Key()[2:]))
	}
	s.backlog.Store(n)
	return it.Error()
}

// OutboxEntry is one unpublished event.
type OutboxEntry struct {
	Seq   uint64
	Value []byte // the encoded event (owned by the caller)
}

// ReadOutbox returns up to max entries with seq > after that are safe to
// publish: at or below the lowest sequence still being committed.
func (s *Store) ReadOutbox(after uint64, max int) ([]OutboxEntry, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	horizon := s.horizon()
	if horizon <= after {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: outboxKey(after + 1), UpperBound: outboxKey(horizon + 1)})
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	defer it.Close()
	var out []OutboxEntry
	for it.First(); it.Valid() && len(out) < max; it.Next() {
		out = append(out, OutboxEntry{
			Seq:   binary.BigEndian.Uint64(it.Key()[2:]),
			Value: append([]byte(nil), it.Value()...),
		})
	}
	return out, it.Error()
}

// horizon is the highest event sequence below every one still being
// committed: readers of the outbox and the webhook queue stop there.
func (s *Store) horizon() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.outboxSeq.Load()
	for q := range s.pending {
		if q <= h {
			h = q - 1
		}
	}
	return h
}

// AckOutbox deletes the outbox entries with from <= seq <= to after Kafka
// confirmed them. n is how many entries that range held. The deletion is not
// synced: losing it in a crash only republishes, and consumers dedupe on
// event_id.
func (s *Store) AckOutbox(from, to uint64, n int) error {
	if s.closed.Load() {
		return ErrClosed
	}
	end := to + 1
	if to == math.MaxUint64 {
		end = to
	}
	if err := s.db.DeleteRange(outboxKey(from), outboxKey(end), pebble.NoSync); err != nil {
		return fmt.Errorf("store: ack outbox: %w", err)
	}
	s.backlog.Add(-int64(n))
	return nil
}

// OutboxBacklog is the number of committed events not yet acknowledged.
func (s *Store) OutboxBacklog() int64 { return s.backlog.Load() }

// OutboxWake is signalled (without blocking) after writes with events
// commit, so the relay need not poll fast.
func (s *Store) OutboxWake() <-chan struct{} { return s.wake }

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("store: pebble fatal: "+format, args...))
}

// Metrics returns Pebble's metrics: LSM shape, compactions, cache hits.
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }

// Settle writes the memtables out and waits until no compaction is
// running or owed, or ctx ends: a benchmark's timed window then does not
// pay for what its set-up wrote.
func (s *Store) Settle(ctx context.Context) error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	for {
		m := s.db.Metrics()
		if m.Compact.NumInProgress == 0 && m.Compact.EstimatedDebt == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
