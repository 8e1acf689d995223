package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/internal/defaults"
	"github.com/wxpayd/wxpayd/sink/internal/kafkautil"
)

// Sink stores events. The consumer is its only caller.
type Sink interface {
	// Write stores every event of evs or returns an error. It may be called
	// again with events it already stored (after a failure, a crash or a
	// rebalance) and must then store each event_id once in effect. It must
	// not keep evs after it returns, and should return when ctx ends. The
	// consumer calls Write from one goroutine at a time.
	Write(ctx context.Context, evs []event.Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, evs []event.Event) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, evs []event.Event) error { return f(ctx, evs) }

// batch is what the fetch loop hands to the write loop.
type batch struct {
	events []event.Event
	dead   []kafka.Message       // dead-letter messages, headers set
	last   map[int]kafka.Message // highest message per partition, to commit
	first  time.Time             // when the first message arrived
}

func (b *batch) size() int { return len(b.events) + len(b.dead) }

// Consumer moves events from Kafka to a Sink. Create it with New, run it
// with Run; Close stops it. Its methods are safe for concurrent use.
type Consumer struct {
	cfg  Config
	sink Sink
	log  *slog.Logger
	m    *metrics

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	started bool
	closed  atomic.Bool

	free chan []event.Event // batches' event slices, for reuse
}

// New checks cfg and returns a Consumer that writes to sink.
func New(cfg Config, sink Sink) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("%w: nil Sink", ErrConfig)
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, sink: sink, log: cfg.Logger.With("component", "sink-consumer"), m: m, done: make(chan struct{}),
		free: make(chan []event.Event, 3)}, nil
}

// Run consumes until ctx ends or Close is called, then writes and commits
// what it already fetched (within ShutdownTimeout) and returns nil. It
// returns an error only if it cannot start. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed.Load() {
		c.mu.Unlock()
		return ErrClosed
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	c.mu.Unlock()
	defer close(c.done)
	defer c.cancel()

	// Create the topics first: a reader of a missing topic waits forever,
	// and the DLQ writer must not meet an unknown topic.
	bo := defaults.Backoff{Min: c.cfg.RetryBackoff, Max: c.cfg.MaxRetryBackoff}
	for {
		err := kafkautil.EnsureTopics(ctx, c.cfg.Brokers, c.cfg.Partitions, c.cfg.ReplicationFactor, c.cfg.Topic, c.cfg.DLQTopic)
		if err == nil {
			break
		}
		c.log.Warn("cannot create topics; retrying", "err", err)
		if bo.Sleep(ctx) != nil {
			return nil
		}
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.cfg.Brokers,
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		QueueCapacity:     8192,
		MinBytes:          1,
		MaxBytes:          16 << 20,
		MaxWait:           250 * time.Millisecond,
		CommitInterval:    0, // synchronous commits, after the Sink accepted
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  time.Second,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    time.Second,
		MaxAttempts:       3,
		ErrorLogger:       kafka.LoggerFunc(func(f string, a ...any) { c.log.Debug("kafka reader: " + fmt.Sprintf(f, a...)) }),
	})
	dlq := &kafka.Writer{
		Addr:         kafka.TCP(c.cfg.Brokers...),
		Topic:        c.cfg.DLQTopic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		MaxAttempts:  3,
		Transport:    &kafka.Transport{},
	}

	batches := make(chan *batch, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the write loop: Sink.Write, DLQ, commit; in batch order
		defer wg.Done()
		c.writeLoop(ctx, r, dlq, batches)
	}()
	c.fetchLoop(ctx, r, batches)
	close(batches)
	wg.Wait()
	if err := dlq.Close(); err != nil {
		c.log.Debug("closing DLQ writer", "err", err)
	}
	if err := r.Close(); err != nil {
		c.log.Debug("closing reader", "err", err)
	}
	return nil
}

// open is the batch being filled and the context that ends at its flush
// deadline.
type open struct {
	b      *batch
	ctx    context.Context
	cancel context.CancelFunc
}

// fetchLoop reads messages into batches until ctx ends, then hands off the
// partial batch.
func (c *Consumer) fetchLoop(ctx context.Context, r *kafka.Reader, out chan<- *batch) {
	var cur open
	flush := func() {
		if cur.cancel != nil {
			cur.cancel()
		}
		if cur.b != nil && cur.b.size() > 0 {
			out <- cur.b // blocks while one batch is written and one waits
		}
		cur = open{}
	}
	defer flush()
	bo := defaults.Backoff{Min: c.cfg.RetryBackoff, Max: c.cfg.MaxRetryBackoff}
	for {
		fctx := ctx
		if cur.b != nil {
			fctx = cur.ctx
		}
		m, err := r.FetchMessage(fctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, context.DeadlineExceeded) && cur.b != nil {
				flush()
				continue
			}
			c.log.Warn("fetch failed", "err", err)
			if bo.Sleep(ctx) != nil {
				return
			}
			continue
		}
		bo.Reset()
		if cur.b == nil {
			cur.b = &batch{events: c.eventSlice(), last: map[int]kafka.Message{}, first: time.Now()}
			cur.ctx, cur.cancel = context.WithDeadline(ctx, cur.b.first.Add(c.cfg.FlushInterval))
		}
		c.add(cur.b, m)
		if cur.b.size() >= c.cfg.BatchSize {
			flush()
		}
	}
}

// add decodes m into b, or makes it a dead letter.
func (c *Consumer) add(b *batch, m kafka.Message) {
	e, err := Decode(m.Value)
	if err != nil {
		b.dead = append(b.dead, deadLetter(m, err))
	} else {
		b.events = append(b.events, e)
	}
	m.Value, m.Key, m.Headers = nil, nil, nil // only the offset is needed to commit
	b.last[m.Partition] = m
}

func deadLetter(m kafka.Message, reason error) kafka.Message {
	return kafka.Message{
		Key:   m.Key,
		Value: m.Value,
		Headers: append(append([]kafka.Header(nil), m.Headers...),
			kafka.Header{Key: DLQReasonHeader, Value: []byte(reason.Error())},
			kafka.Header{Key: "wxpayd-dlq-topic", Value: []byte(m.Topic)},
			kafka.Header{Key: "wxpayd-dlq-partition", Value: []byte(strconv.Itoa(m.Partition))},
			kafka.Header{Key: "wxpayd-dlq-offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		),
	}
}

// writeLoop stores each batch (dead letters first, then the Sink) and
// commits its offsets, retrying each step until it succeeds. When ctx ends
// it still drains the batches already fetched, within ShutdownTimeout.
func (c *Consumer) writeLoop(ctx context.Context, r *kafka.Reader, dlq *kafka.Writer, in <-chan *batch) {
	// wctx outlives ctx by ShutdownTimeout so the last batches land.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.ShutdownTimeout, wcancel) })
	defer stop()
	for b := range in {
		if wctx.Err() != nil {
			continue // drained by the deadline: the uncommitted tail is read again later
		}
		c.writeBatch(wctx, r, dlq, b)
	}
}

func (c *Consumer) writeBatch(ctx context.Context, r *kafka.Reader, dlq *kafka.Writer, b *batch) {
	start := time.Now()
	bo := defaults.Backoff{Min: c.cfg.RetryBackoff, Max: c.cfg.MaxRetryBackoff}
	if len(b.dead) > 0 {
		for {
			err := dlq.WriteMessages(ctx, b.dead...)
			if err == nil {
				break
			}
			c.m.dlqErrors.Inc()
			c.log.Warn("dead-letter publish failed; retrying", "n", len(b.dead), "err", err)
			if bo.Sleep(ctx) != nil {
				return
			}
		}
		c.m.deadLetters.Add(float64(len(b.dead)))
		bo.Reset()
	}
	if len(b.events) > 0 {
		for {
			err := c.sink.Write(ctx, b.events)
			if err == nil {
				break
			}
			c.m.writeErrors.Inc()
			c.log.Warn("sink write failed; retrying", "n", len(b.events), "err", err)
			if bo.Sleep(ctx) != nil {
				return
			}
		}
		c.m.written.Add(float64(len(b.events)))
		var oldest int64
		for i := range b.events {
			if t := b.events[i].TimeMs; oldest == 0 || t < oldest {
				oldest = t
			}
		}
		c.m.lag.Set(time.Since(time.UnixMilli(oldest)).Seconds())
		bo.Reset()
	}
	c.m.batchSeconds.Observe(time.Since(start).Seconds())
	c.recycle(b.events)
	msgs := make([]kafka.Message, 0, len(b.last))
	for _, m := range b.last {
		msgs = append(msgs, m)
	}
	for attempt := 1; ; attempt++ {
		err := r.CommitMessages(ctx, msgs...)
		if err == nil {
			c.m.committed.Add(float64(b.size()))
			return
		}
		c.m.commitErrors.Inc()
		// The batch is stored; an uncommitted offset only means it is read
		// and written again (deduplicated). After a rebalance the partition
		// may belong to another member, and retrying cannot succeed.
		if attempt >= 5 || ctx.Err() != nil {
			c.log.Warn("commit failed; the batch will be redelivered", "err", err)
			return
		}
		if bo.Sleep(ctx) != nil {
			return
		}
	}
}

// eventSlice returns an empty slice for a batch's events, reusing one a
// stored batch gave back (no growing from small to BatchSize each time).
func (c *Consumer) eventSlice() []event.Event {
	select {
	case s := <-c.free:
		return s
	default:
		return make([]event.Event, 0, min(c.cfg.BatchSize, 8192))
	}
}

// recycle gives a stored batch's slice back, cleared so it pins no strings.
func (c *Consumer) recycle(s []event.Event) {
	clear(s)
	select {
	case c.free <- s[:0]:
	default:
	}
}

// Close stops Run (which finishes the batches in hand) and waits for it.
// It is idempotent. If Run was never called it returns at once.
func (c *Consumer) Close() error {
	c.closed.Store(true)
	c.mu.Lock()
	started, cancel := c.started, c.cancel
	c.mu.Unlock()
	if !started {
		return nil
	}
	cancel()
	<-c.done
	return nil
}
