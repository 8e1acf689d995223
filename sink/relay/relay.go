package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/internal/defaults"
	"github.com/wxpayd/wxpayd/sink/internal/kafkautil"
)

// ErrClosed: the Relay was closed or already ran.
var ErrClosed = errors.New("relay: closed")

// Relay publishes a store's outbox to Kafka. Create it with New, start it
// with Run, stop it with Close (or by ending Run's context). Its methods are
// safe for concurrent use.
type Relay struct {
	cfg Config
	st  *store.Store
	w   *kafka.Writer
	log *slog.Logger

	oldestMs atomic.Int64 // ts_ms of the first unsent entry being published; 0 when caught up

	published, errs prometheus.Counter
	latency         prometheus.Histogram

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New checks cfg and returns a Relay for st. It registers its metrics on
// cfg.Registerer (if any); it does not connect yet.
func New(cfg Config, st *store.Store) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: nil store", ErrConfig)
	}
	cfg = cfg.withDefaults()
	r := &Relay{
		cfg: cfg,
		st:  st,
		log: cfg.Logger.With("component", "outbox-relay"),
		w: &kafka.Writer{
			Addr:            kafka.TCP(cfg.Brokers...),
			Topic:           cfg.Topic,
			Balancer:        &kafka.Murmur2Balancer{}, // the Java client's partitioner
			RequiredAcks:    kafka.RequireAll,
			BatchSize:       cfg.BatchSize,
			BatchTimeout:    cfg.BatchTimeout,
			Compression:     cfg.Compression,
			MaxAttempts:     cfg.MaxAttempts,
			WriteBackoffMin: 50 * time.Millisecond,
			WriteBackoffMax: time.Second,
			// Its own transport: metadata is cached 6 s per transport, and
			// nobody else's stale view must hide the topic we just created.
			Transport: &kafka.Transport{DialTimeout: 5 * time.Second},
		},
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_relay_published_total", Help: "Outbox events confirmed by Kafka."}),
		errs:      prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_relay_errors_total", Help: "Failed publishes (each retried)."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wxpayd_relay_publish_seconds",
			Help: "Time for Kafka to confirm one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		done: make(chan struct{}),
	}
	if reg := cfg.Registerer; reg != nil {
		backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_outbox_backlog",
			Help: "Committed events not yet confirmed by Kafka."}, func() float64 { return float64(st.OutboxBacklog()) })
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_outbox_oldest_unsent_age_seconds",
			Help: "Age of the oldest event not yet confirmed by Kafka (0 when none)."}, r.OldestUnsentAge)
		for _, c := range []prometheus.Collector{backlog, age, r.published, r.errs, r.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("relay: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// OldestUnsentAge is the age in seconds of the oldest event the relay is
// publishing and Kafka has not confirmed, or 0 when the relay is caught up.
func (r *Relay) OldestUnsentAge() float64 {
	ms := r.oldestMs.Load()
	if ms == 0 {
		return 0
	}
	return max(0, time.Since(time.UnixMilli(ms)).Seconds())
}

// Run creates the topic (retrying while Kafka is unreachable) and then
// publishes the outbox until ctx ends or Close is called; it returns nil
// then. It returns an error if the store fails (for example, is closed).
// Run may be called once.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.started = true
	ctx, r.cancel = context.WithCancel(ctx)
	r.mu.Unlock()
	defer close(r.done)
	defer r.cancel()

	bo := defaults.Backoff{Min: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff}
	for {
		err := kafkautil.EnsureTopics(ctx, r.cfg.Brokers, r.cfg.Partitions, r.cfg.ReplicationFactor, r.cfg.Topic)
		if err == nil {
			break
		}
		r.errs.Inc()
		r.log.Warn("cannot create the topic; retrying", "topic", r.cfg.Topic, "err", err)
		if bo.Sleep(ctx) != nil {
			return nil
		}
	}

	tick := time.NewTicker(r.cfg.PollInterval)
	defer tick.Stop()
	var after uint64
	for {
		entries, err := r.st.ReadOutbox(after, r.cfg.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: read outbox: %w", err)
		}
		if len(entries) == 0 {
			r.oldestMs.Store(0)
			select {
			case <-ctx.Done():
				return nil
			case <-r.st.OutboxWake():
			case <-tick.C:
			}
			continue
		}
		if !r.publish(ctx, entries) {
			return nil // ctx ended; the entries stay in the outbox
		}
		first, last := entries[0].Seq, entries[len(entries)-1].Seq
		if err := r.st.AckOutbox(first, last, len(entries)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: ack outbox: %w", err)
		}
		r.published.Add(float64(len(entries)))
		after = last
	}
}

// publish sends entries until Kafka confirmed every one, retrying with
// back-off; only the messages that failed are sent again. It returns false
// if ctx ended first.
func (r *Relay) publish(ctx context.Context, entries []store.OutboxEntry) bool {
	r.oldestMs.Store(timeMs(entries[0].Value))
	msgs := make([]kafka.Message, len(entries))
	for i, e := range entries {
		msgs[i] = kafka.Message{Key: outTradeNo(e.Value), Value: e.Value}
	}
	bo := defaults.Backoff{Min: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff}
	for {
		start := time.Now()
		err := r.w.WriteMessages(ctx, msgs...)
		if err == nil {
			r.latency.Observe(time.Since(start).Seconds())
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.errs.Inc()
		var we kafka.WriteErrors
		if errors.As(err, &we) && len(we) == len(msgs) {
			failed := msgs[:0:0]
			for i, e := range we {
				if e != nil {
					failed = append(failed, msgs[i])
				}
			}
			msgs = failed
		}
		r.log.Warn("publish failed; retrying", "messages", len(msgs), "err", err)
		if bo.Sleep(ctx) != nil {
			return false
		}
	}
}

// Close stops Run, waits for it, and closes the Kafka writer. Entries not
// yet confirmed stay in the outbox for the next Run. It is idempotent.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	started, cancel := r.started, r.cancel
	r.mu.Unlock()
	if started {
		cancel()
		<-r.done
	}
	return r.w.Close()
}
