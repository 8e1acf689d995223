package webhook

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// Deliverer posts a store's webhook queue to the shop's endpoint. Create
// it with New, start it with Run, stop it with Close. Its methods are safe
// for concurrent use.
//
// One goroutine (Run's) owns the queue in memory: it reads the store's
// queue in pages, keeps each order's entries in a lane (first in, first
// out) and hands the head of a due lane to one of Concurrency workers, so
// an order has at most one attempt in flight and its later events wait
// until the earlier one is delivered or parked. Nothing here shares a lock
// with the order actors: they only append to the queue in their own
// batches, and the deliverer writes its progress in separate, unsynced
// batches (except parking, which is rare).
type Deliverer struct {
	cfg  Config
	st   *store.Store
	log  *slog.Logger
	post *poster
	rnd  func(int64) int64

	delivered, parked, redelivered prometheus.Counter
	failed                         *prometheus.CounterVec
	latency                        prometheus.Histogram
	stats                          struct{ delivered, failed, parked, redelivered, inflight atomic.Int64 }

	mu      sync.Mutex
	started bool
	closed  bool
	stop    chan struct{} // closed by Close: take no new attempts
	done    chan struct{}
}

// New checks cfg and returns a Deliverer for st's webhook queue. It
// registers its metrics on cfg.Registerer (if any).
func New(cfg Config, st *store.Store) (*Deliverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrConfig)
	}
	cfg = cfg.withDefaults()
	cfg.Secret = append([]byte(nil), cfg.Secret...)
	post, err := newPoster(cfg.URL, cfg.Timeout, cfg.Concurrency)
	if err != nil {
		return nil, fmt.Errorf("%w: URL: %w", ErrConfig, err)
	}
	d := &Deliverer{
		cfg: cfg, st: st, log: cfg.Logger.With("component", "webhooks"), rnd: rand.Int64N, post: post,
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_webhook_delivered_total",
			Help: "Webhook events the shop's endpoint accepted (2xx)."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxpayd_webhook_failed_attempts_total",
			Help: "Webhook attempts that failed, by reason: status (not 2xx), timeout, connection."}, []string{"reason"}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_webhook_parked_total",
			Help: "Webhook events parked in the dead letters after their retries ran out."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_webhook_redelivered_total",
			Help: "Dead letters put back in the queue by the admin API."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wxpayd_webhook_delivery_seconds",
			Help: "Duration of accepted webhook attempts.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if reg := cfg.Registerer; reg != nil {
		depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_webhook_queue_depth",
			Help: "Webhook events queued: not yet delivered or parked."}, func() float64 { return float64(st.WebhookBacklog()) })
		dead := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_webhook_dead",
			Help: "Webhook events in the dead letters (GET /admin/v1/webhooks/dead)."}, func() float64 { return float64(st.DeadWebhookCount()) })
		inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_webhook_inflight",
			Help: "Webhook attempts in flight."}, func() float64 { return float64(d.stats.inflight.Load()) })
		for _, c := range []prometheus.Collector{depth, dead, inflight, d.delivered, d.failed, d.parked, d.redelivered, d.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("webhook: register metrics: %w", err)
			}
		}
	}
	return d, nil
}

// Stats are the deliverer's counts since New, and the store's queue.
type Stats struct {
	Delivered, FailedAttempts, Parked, Redelivered int64
	Queued, Dead                                   int64
	InFlight                                       int64 // attempts now
}

// Stats returns the counts now.
func (d *Deliverer) Stats() Stats {
	return Stats{
		Delivered: d.stats.delivered.Load(), FailedAttempts: d.stats.failed.Load(), Parked: d.stats.parked.Load(),
		Redelivered: d.stats.redelivered.Load(), Queued: d.st.WebhookBacklog(), Dead: d.st.DeadWebhookCount(),
		InFlight: d.stats.inflight.Load(),
	}
}

// DeadWebhooks returns up to limit dead letters with id > after, oldest
// first.
func (d *Deliverer) DeadWebhooks(after uint64, limit int) ([]store.DeadWebhook, error) {
	return d.st.DeadWebhooks(after, limit)
}

// Redeliver puts dead letter id back at the end of the queue with a fresh
// retry period. It returns an error wrapping store.ErrNoDeadWebhook if
// there is no such id. The event is then delivered after the order's
// events queued before it, so it may arrive after later events of its
// order: receivers order by seq.
func (d *Deliverer) Redeliver(id uint64) error {
	if err := d.st.RequeueDeadWebhook(id); err != nil {
		return err
	}
	d.redelivered.Inc()
	d.stats.redelivered.Add(1)
	return nil
}

// item is one queued entry in memory; lane is its order's.
type item struct {
	e    store.WebhookEntry
	lane *lane
}

// lane is one order's queued entries, oldest first. Only its head is ever
// attempted.
type lane struct {
	otn  string
	q    []*item
	busy bool // the head's attempt is in flight
	hi   int  // index in the ready heap; -1 when not in it
}

// ready orders the lanes whose head waits for an attempt: due time, then
// queue position.
type ready []*lane

func (r ready) Len() int { return len(r) }
func (r ready) Less(i, j int) bool {
	a, b := r[i].q[0].e, r[j].q[0].e
	if a.Tries.NextMs != b.Tries.NextMs {
		return a.Tries.NextMs < b.Tries.NextMs
	}
	return a.Seq < b.Seq
}
func (r ready) Swap(i, j int) { r[i], r[j] = r[j], r[i]; r[i].hi, r[j].hi = i, j }
func (r *ready) Push(x any)   { l := x.(*lane); l.hi = len(*r); *r = append(*r, l) }
func (r *ready) Pop() any {
	old := *r
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*r = old[:len(old)-1]
	l.hi = -1
	return l
}

// result is one attempt's outcome.
type result struct {
	it      *item
	ok      bool
	reason  string // metrics label of a failure
	why     string // the failure, for the dead letter
	took    time.Duration
	aborted bool // cut off by Close: nothing is recorded
}

// queue is Run's state; only Run's goroutine touches it.
type queue struct {
	lanes    map[string]*lane
	ready    ready
	buffered int    // entries in lanes
	after    uint64 // the last queue position read
	inflight int
	acks     []uint64 // delivered, to delete from the store at the end of the turn
	fill     bool     // read the store at the next turn
	capped   bool     // the last read stopped at MaxBuffered
}

// Run delivers the queue until Close is called or ctx ends; then it waits
// for the attempts in flight (each bounded by Timeout, or cut off by
// Close's deadline) and returns nil. It returns an error if the store
// fails (for example, is closed). Run may be called once.
func (d *Deliverer) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.started || d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.started = true
	d.mu.Unlock()
	defer close(d.done)

	jobs := make(chan *item)
	results := make(chan result, d.cfg.Concurrency) // never more in flight
	var wg sync.WaitGroup
	for range d.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				results <- d.attempt(it)
			}
		}()
	}
	q := &queue{lanes: map[string]*lane{}, fill: true}
	err := d.loop(ctx, q, jobs, results)
	// Stopping: no new attempts; record those in flight.
	for q.inflight > 0 {
		r := <-results
		if herr := d.handle(q, r); herr != nil && err == nil {
			err = herr
		}
	}
	if aerr := d.ack(q); aerr != nil && err == nil {
		err = aerr
	}
	close(jobs)
	wg.Wait()
	return err
}

func (d *Deliverer) loop(ctx context.Context, q *queue, jobs chan<- *item, results <-chan result) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if q.fill || q.capped && q.buffered <= d.cfg.MaxBuffered-d.cfg.PageSize {
			if err := d.read(q); err != nil {
				return err
			}
		}
		wait, err := d.dispatch(q, jobs)
		if err != nil {
			return err
		}
		timer.Reset(wait) // (Go 1.23 timers: no stale tick after Reset)
		select {
		case <-ctx.Done():
			return nil
		case <-d.stop:
			return nil
		case r := <-results:
			// Take every result that is in, and delete what they
			// delivered in one write.
			for more := true; more; {
				if err := d.handle(q, r); err != nil {
					return err
				}
				select {
				case r = <-results:
				default:
					more = false
				}
			}
			if err := d.ack(q); err != nil {
				return err
			}
		case <-d.st.WebhookWake():
			q.fill = true
		case <-timer.C:
			q.fill = true // a commit's wake may have gone to a previous turn
		}
	}
}

// read appends new queue entries to their lanes, up to MaxBuffered.
func (d *Deliverer) read(q *queue) error {
	q.fill, q.capped = false, false
	for q.buffered < d.cfg.MaxBuffered {
		n := min(d.cfg.PageSize, d.cfg.MaxBuffered-q.buffered)
		entries, err := d.st.ReadWebhooks(q.after, n)
		if err != nil {
			return fmt.Errorf("webhook: read queue: %w", err)
		}
		for _, e := range entries {
			l := q.lanes[e.OutTradeNo]
			if l == nil {
				l = &lane{otn: e.OutTradeNo, hi: -1}
				q.lanes[e.OutTradeNo] = l
			}
			l.q = append(l.q, &item{e: e, lane: l})
			if len(l.q) == 1 && !l.busy {
				heap.Push(&q.ready, l)
			}
			q.after = e.Seq
			q.buffered++
		}
		if len(entries) < n {
			return nil
		}
	}
	q.capped = true
	return nil
}

// dispatch starts attempts for due lane heads while workers are free, and
// returns how long to wait for the next turn.
func (d *Deliverer) dispatch(q *queue, jobs chan<- *item) (time.Duration, error) {
	for q.ready.Len() > 0 && q.inflight < d.cfg.Concurrency {
		l := q.ready[0]
		it := l.q[0]
		now := d.cfg.Now()
		if due := it.e.Tries.NextMs - now.UnixMilli(); due > 0 {
			return min(time.Duration(due)*time.Millisecond, d.cfg.PollInterval), nil
		}
		heap.Pop(&q.ready)
		l.busy = true
		q.inflight++
		d.stats.inflight.Store(int64(q.inflight))
		if it.e.Event == nil {
			// The order's history no longer holds the event: nothing to
			// send, ever. Park it for an operator to see.
			if err := d.handle(q, result{it: it, reason: "missing", why: "the event is not in the order's history"}); err != nil {
				return 0, err
			}
			continue
		}
		jobs <- it // a worker is free: fewer than Concurrency are in flight
	}
	return d.cfg.PollInterval, nil
}

// handle records an attempt's outcome and moves its lane on.
func (d *Deliverer) handle(q *queue, r result) error {
	it := r.it
	l := it.lane
	q.inflight--
	d.stats.inflight.Store(int64(q.inflight))
	l.busy = false
	switch {
	case r.aborted:
		// Shutting down: the entry stays queued as it was.
		return nil
	case r.ok:
		q.acks = append(q.acks, it.e.Seq)
		d.latency.Observe(r.took.Seconds())
	default:
		// The counters move after the state is recorded, so whoever reads
		// them sees the state too.
		defer func() {
			if r.reason != "missing" {
				d.failed.WithLabelValues(r.reason).Inc()
				d.stats.failed.Add(1)
			}
		}()
		now := d.cfg.Now()
		tries, park := d.cfg.afterFailure(it.e.Tries, now, r.why, d.rnd)
		if r.reason == "missing" {
			park = true
		}
		if !park {
			if err := d.st.SetWebhookTries(it.e.Seq, tries); err != nil {
				return fmt.Errorf("webhook: record attempt: %w", err)
			}
			it.e.Tries = tries
			heap.Push(&q.ready, l)
			return nil
		}
		dead, err := d.st.ParkWebhook(it.e, tries, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("webhook: park: %w", err)
		}
		d.parked.Inc()
		d.stats.parked.Add(1)
		d.log.Warn("webhook parked: retries ran out", "id", dead.ID, "event_id", dead.EventID,
			"attempts", dead.Attempts, "last_error", dead.LastError)
	}
	// Delivered or parked: the order's next entry may go.
	l.q[0] = nil
	l.q = l.q[1:]
	q.buffered--
	if len(l.q) == 0 {
		delete(q.lanes, l.otn)
	} else {
		heap.Push(&q.ready, l)
	}
	return nil
}

// ack deletes the entries delivered in this turn from the store, before
// the turn dispatches their orders' next entries. The deletion is not
// synced, so a crash may deliver an entry again after its order's next
// one: the receiver sees the earlier event again, never the later first.
func (d *Deliverer) ack(q *queue) error {
	if len(q.acks) == 0 {
		return nil
	}
	if err := d.st.AckWebhooks(q.acks); err != nil {
		return fmt.Errorf("webhook: ack: %w", err)
	}
	d.delivered.Add(float64(len(q.acks)))
	d.stats.delivered.Add(int64(len(q.acks)))
	q.acks = q.acks[:0]
	return nil
}

// attempt posts one entry, signed at the time of the attempt.
func (d *Deliverer) attempt(it *item) result {
	r := result{it: it}
	start := time.Now()
	status, err := d.post.post(it.e.Event,
		"User-Agent", "wxpayd-webhook/1",
		"Wxpayd-Event-Id", event.ID(it.e.OutTradeNo, it.e.OrderSeq),
		"Wxpayd-Attempt", strconv.Itoa(it.e.Tries.Attempts+1),
		SignatureHeader, Sign(d.cfg.Secret, d.cfg.Now().Unix(), it.e.Event))
	r.took = time.Since(start)
	switch {
	case errors.Is(err, errAborted):
		r.aborted = true
	case err != nil:
		r.reason, r.why = d.post.failure(err)
	case status < 200 || status > 299:
		// A redirect too: the shop's misconfiguration, not a second
		// request with the signed body somewhere else.
		r.reason, r.why = "status", statusText(status)
	default:
		r.ok = true
	}
	return r
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Close stops Run: no new attempts start, and those in flight may finish
// until ctx ends, when they are cut off (an attempt cut off is made again
// at the next start: the shop may receive it twice). It waits for Run to
// return and is idempotent. Entries not delivered stay queued.
func (d *Deliverer) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	started := d.started
	close(d.stop)
	d.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		d.post.abort()
		<-d.done
		return nil
	}
}
