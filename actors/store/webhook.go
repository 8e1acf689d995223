package store

// The webhook queue: events the shop subscribed to, queued in the same
// batch as the transition that produced them, and delivered by
// sink/webhook. Unlike the outbox (x/), which the Kafka relay deletes once
// Kafka confirmed, each queue entry stays until the shop's endpoint
// accepted it or it was parked.
//
//	w/<seq>    queued for delivery: <order seq, 8 bytes><out_trade_no>, a
//	           reference to the event in h/ (seq is the store's event
//	           sequence, the outbox's, so the queue is in commit order and
//	           an order's events are in its order)
//	wt/<seq>   delivery state of w/<seq> once an attempt failed (JSON
//	           WebhookTries): the persisted retry schedule
//	wd/<id>    dead letters: entries parked after their retries ran out
//	           (JSON DeadWebhook, the event copied in)
//
// The hot path (AddEvent) adds one small Set to the batch when the event
// is subscribed: no read, no extra fsync. Everything else runs on the
// deliverer's goroutines and writes without fsync, except parking and
// requeueing, which are rare.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wxpayd/wxpayd/actors/event"
)

// ErrNoDeadWebhook: no dead letter has that id.
var ErrNoDeadWebhook = errors.New("store: no such dead webhook")

// webhookQueue is the Store's part of the webhook queue.
type webhookQueue struct {
	match func(*event.Event) bool // Options.Webhook; nil queues nothing
	depth atomic.Int64            // committed w/ entries
	dead  atomic.Int64            // wd/ entries
	wake  chan struct{}           // signalled after commits that queued entries
	// mu serialises parking and requeueing (the deliverer and the admin
	// API), never the hot path.
	mu     sync.Mutex
	deadID uint64 // the last dead letter id given
}

func webhookKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("w/"), seq) }
func triesKey(seq uint64) []byte   { return binary.BigEndian.AppendUint64([]byte("wt/"), seq) }
func deadKey(id uint64) []byte     { return binary.BigEndian.AppendUint64([]byte("wd/"), id) }

// queueWebhook adds e, whose outbox sequence is seq, to the webhook queue
// when it is subscribed. It allocates nothing: the batch copies key and
// value.
func (w *Write) queueWebhook(e *event.Event, seq uint64) {
	m := w.s.hooks.match
	if w.err != nil || m == nil || e.OutTradeNo == "" || !m(e) {
		return
	}
	var k [10]byte
	var v [72]byte
	key := binary.BigEndian.AppendUint64(append(k[:0], "w/"...), seq)
	val := append(binary.BigEndian.AppendUint64(v[:0], e.Seq), e.OutTradeNo...)
	w.err = w.b.Set(key, val, nil)
	w.hooks++
}

// committed counts n queued entries after their write committed.
func (q *webhookQueue) committed(n int) {
	if n > 0 {
		q.depth.Add(int64(n))
	}
}

// signal wakes the deliverer (without blocking) when n > 0.
func (q *webhookQueue) signal(n int) {
	if n > 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// loadWebhookState counts the queue and the dead letters, and raises the
// event sequence above the last queued entry: with the outbox drained, the
// sequence would otherwise start again below entries still queued.
func (s *Store) loadWebhookState() error {
	n, last, err := s.countKeys([]byte("w/"))
	if err != nil {
		return err
	}
	s.hooks.depth.Store(n)
	if last > s.outboxSeq.Load() {
		s.outboxSeq.Store(last)
	}
	if n, last, err = s.countKeys([]byte("wd/")); err != nil {
		return err
	}
	s.hooks.dead.Store(n)
	s.hooks.deadID = last
	return nil
}

// countKeys counts the keys under prefix, whose suffix is an 8-byte
// number, and returns the last one's number.
func (s *Store) countKeys(prefix []byte) (n int64, last uint64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, 0, fmt.Errorf("store: %s: %w", prefix, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if it.Last() && len(it.Key()) == len(prefix)+8 {
		last = binary.BigEndian.Uint64(it.Key()[len(prefix):])
	}
	return n, last, it.Error()
}

// WebhookTries is the delivery state of a queued entry. The zero value is
// an entry never tried.
type WebhookTries struct {
	Attempts  int    `json:"attempts"`
	FirstMs   int64  `json:"first_ms"`             // the first attempt, Unix ms
	LastMs    int64  `json:"last_ms"`              // the last attempt
	NextMs    int64  `json:"next_ms"`              // not before this time
	LastError string `json:"last_error,omitempty"` // why the last attempt failed
}

// WebhookEntry is one queued webhook delivery.
type WebhookEntry struct {
	Seq        uint64 // position in the queue
	OutTradeNo string
	OrderSeq   uint64 // the event's seq within its order
	// Event is the encoded event, read from the order's history (owned by
	// the caller); nil if the history no longer holds it.
	Event []byte
	Tries WebhookTries
}

// ReadWebhooks returns up to max queued entries with seq > after, in
// queue order, with their events and delivery state. Like ReadOutbox it
// never returns an entry past the lowest sequence still being committed,
// so a cursor over it skips nothing.
func (s *Store) ReadWebhooks(after uint64, max int) ([]WebhookEntry, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	horizon := s.horizon()
	if horizon <= after || max <= 0 {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: webhookKey(after + 1), UpperBound: webhookKey(horizon + 1)})
	if err != nil {
		return nil, fmt.Errorf("store: webhooks: %w", err)
	}
	var out []WebhookEntry
	for it.First(); it.Valid() && len(out) < max; it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 10 || len(v) < 8 {
			continue
		}
		out = append(out, WebhookEntry{
			Seq: binary.BigEndian.Uint64(k[2:]), OrderSeq: binary.BigEndian.Uint64(v), OutTradeNo: string(v[8:]),
		})
	}
	err = it.Error()
	_ = it.Close()
	if err != nil || len(out) == 0 {
		return nil, err
	}
	if err := s.readTries(out); err != nil {
		return nil, err
	}
	for i := range out {
		e := &out[i]
		if _, err := s.get(historyKey(e.OutTradeNo, e.OrderSeq), func(b []byte) error {
			e.Event = append([]byte(nil), b...)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readTries fills the delivery state of entries (sorted by Seq) from wt/.
func (s *Store) readTries(entries []WebhookEntry) error {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: triesKey(entries[0].Seq), UpperBound: triesKey(entries[len(entries)-1].Seq + 1),
	})
	if err != nil {
		return fmt.Errorf("store: webhook tries: %w", err)
	}
	defer it.Close()
	i := 0
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 11 {
			continue
		}
		seq := binary.BigEndian.Uint64(it.Key()[3:])
		for i < len(entries) && entries[i].Seq < seq {
			i++
		}
		if i == len(entries) {
			break
		}
		if entries[i].Seq == seq {
			if err := json.Unmarshal(it.Value(), &entries[i].Tries); err != nil {
				return fmt.Errorf("store: decode webhook tries %d: %w", seq, err)
			}
		}
	}
	return it.Error()
}

// AckWebhooks removes delivered entries, in one batch. The deletion is not
// synced: losing it in a crash only delivers the events again.
func (s *Store) AckWebhooks(seqs []uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(seqs) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, q := range seqs {
		_ = b.Delete(webhookKey(q), nil)
		_ = b.Delete(triesKey(q), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("store: ack webhooks: %w", err)
	}
	s.hooks.depth.Add(-int64(len(seqs)))
	return nil
}

// SetWebhookTries records an entry's delivery state after a failed
// attempt, without fsync: a crash loses at most the last few attempts'
// records, and a restart resumes the schedule from what is on disk.
func (s *Store) SetWebhookTries(seq uint64, t WebhookTries) error {
	if s.closed.Load() {
		return ErrClosed
	}
	b, _ := json.Marshal(t)
	if err := s.db.Set(triesKey(seq), b, pebble.NoSync); err != nil {
		return fmt.Errorf("store: webhook tries: %w", err)
	}
	return nil
}

// DeadWebhook is a parked delivery: an event the shop's endpoint did not
// accept within the retry period (or that could not be read).
type DeadWebhook struct {
	ID         uint64          `json:"id"`
	OutTradeNo string          `json:"out_trade_no"`
	Seq        uint64          `json:"seq"` // the event's seq within its order
	EventID    string          `json:"event_id"`
	Attempts   int             `json:"attempts"`
	FirstMs    int64           `json:"first_attempt_ms,omitempty"`
	LastMs     int64           `json:"last_attempt_ms,omitempty"`
	ParkedMs   int64           `json:"parked_ms"`
	LastError  string          `json:"last_error"`
	Event      json.RawMessage `json:"event,omitempty"`
}

// ParkWebhook moves a queued entry to the dead letters, with its final
// delivery state, in one synced write, and returns the dead letter.
func (s *Store) ParkWebhook(e WebhookEntry, t WebhookTries, parkedMs int64) (DeadWebhook, error) {
	if s.closed.Load() {
		return DeadWebhook{}, ErrClosed
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	d := DeadWebhook{
		ID: s.hooks.deadID + 1, OutTradeNo: e.OutTradeNo, Seq: e.OrderSeq, EventID: event.ID(e.OutTradeNo, e.OrderSeq),
		Attempts: t.Attempts, FirstMs: t.FirstMs, LastMs: t.LastMs, ParkedMs: parkedMs, LastError: t.LastError,
	}
	if json.Valid(e.Event) {
		d.Event = e.Event
	}
	val, err := json.Marshal(d)
	if err != nil {
		return DeadWebhook{}, fmt.Errorf("store: park webhook: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(deadKey(d.ID), val, nil)
	_ = b.Delete(webhookKey(e.Seq), nil)
	_ = b.Delete(triesKey(e.Seq), nil)
	if err := b.Commit(s.wopts); err != nil {
		return DeadWebhook{}, fmt.Errorf("store: park webhook: %w", err)
	}
	s.hooks.deadID = d.ID
	s.hooks.depth.Add(-1)
	s.hooks.dead.Add(1)
	return d, nil
}

// DeadWebhooks returns up to max dead letters with id > after, oldest
// first.
func (s *Store) DeadWebhooks(after uint64, max int) ([]DeadWebhook, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if after == ^uint64(0) || max <= 0 {
		return nil, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: deadKey(after + 1), UpperBound: prefixEnd([]byte("wd/"))})
	if err != nil {
		return nil, fmt.Errorf("store: dead webhooks: %w", err)
	}
	defer it.Close()
	var out []DeadWebhook
	for it.First(); it.Valid() && len(out) < max; it.Next() {
		var d DeadWebhook
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			return nil, fmt.Errorf("store: decode dead webhook: %w", err)
		}
		out = append(out, d)
	}
	return out, it.Error()
}

// RequeueDeadWebhook puts dead letter id back at the end of the queue,
// with a fresh delivery state, and removes it from the dead letters, in
// one synced write. It returns ErrNoDeadWebhook if there is no such id.
func (s *Store) RequeueDeadWebhook(id uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	var d DeadWebhook
	ok, err := s.getJSON(deadKey(id), &d)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %d", ErrNoDeadWebhook, id)
	}
	// A sequence number like AddEvent's, pending until the write is done,
	// so that a reader's cursor cannot pass it before it commits.
	s.mu.Lock()
	seq := s.outboxSeq.Add(1)
	s.pending[seq] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, seq)
		s.mu.Unlock()
		s.hooks.signal(1)
	}()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(webhookKey(seq), append(binary.BigEndian.AppendUint64(nil, d.Seq), d.OutTradeNo...), nil)
	_ = b.Delete(deadKey(id), nil)
	if err := b.Commit(s.wopts); err != nil {
		return fmt.Errorf("store: requeue webhook: %w", err)
	}
	s.hooks.depth.Add(1)
	s.hooks.dead.Add(-1)
	return nil
}

// WebhookBacklog is the number of queued entries not yet delivered or
// parked.
func (s *Store) WebhookBacklog() int64 { return s.hooks.depth.Load() }

// DeadWebhookCount is the number of dead letters.
func (s *Store) DeadWebhookCount() int64 { return s.hooks.dead.Load() }

// WebhookWake is signalled (without blocking) after writes that queued
// webhook entries commit, so the deliverer need not poll fast. It is not
// the outbox's signal: the relay and the deliverer each have their own.
func (s *Store) WebhookWake() <-chan struct{} { return s.hooks.wake }
