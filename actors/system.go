package actors

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// WeChat is the part of the WeChat Pay client the order actors call: the
// prepay of a new order, and the queries, closes and refunds of timers and
// admins. *client.Client implements it.
type WeChat interface {
	Prepay(ctx context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error)
	QueryByOutTradeNo(ctx context.Context, outTradeNo string) (wxpay.Transaction, error)
	CloseOrder(ctx context.Context, outTradeNo string) error
	CreateRefund(ctx context.Context, req *wxpay.RefundRequest) (wxpay.Refund, error)
	QueryRefund(ctx context.Context, outRefundNo string) (wxpay.Refund, error)
	ApplyAbnormalRefund(ctx context.Context, refundID string, req *wxpay.AbnormalRefundRequest) (wxpay.Refund, error)
}

// Config configures the actor system. Zero values take the defaults.
type Config struct {
	AppID     string // required
	MchID     string // required
	NotifyURL string // required: where WeChat posts payment and refund notifications

	// OrderTTL is how long an unpaid order lives before it is closed at
	// WeChat and its stock released; it is the prepay's time_expire
	// (default 15 min, at least WeChat's 1 min).
	OrderTTL time.Duration
	// PrepayQPS is the merchant's budget of prepay calls per second
	// (default 600; negative = unlimited). PrepayMaxWait is how long a
	// prepay may wait for the budget before the buyer gets StatusBudget
	// (default 200 ms).
	PrepayQPS     int
	PrepayMaxWait time.Duration
	// PrepayTimeout bounds one prepay call (default 5 s).
	PrepayTimeout time.Duration
	// PrepayWorkers and PrepayQueue bound the prepay calls in flight
	// (default 512) and waiting (default 4096); beyond them a new order is
	// refused with ErrOverloaded before anything is written.
	PrepayWorkers int
	PrepayQueue   int
	// QueryAfter is how long after prepay the first active query runs
	// when no notification came (default 1 min); later queries back off.
	QueryAfter time.Duration
	// CloseGrace is how long a CREATED order (prepay never finished) waits
	// before it is closed (default 1 min).
	CloseGrace time.Duration
	// Idle is how long an order actor stays in memory without messages
	// (default 30 s); its state reloads from the store on demand.
	Idle time.Duration
	// Partitions is the number of routing managers (default 16).
	Partitions int
	// MaxInFlight bounds the requests inside the actors at once (default
	// 65536); beyond it Request returns ErrOverloaded.
	MaxInFlight int64
	// RequestTimeout bounds an actor round trip (default 10 s).
	RequestTimeout time.Duration
	// CallWorkers and CallQueue bound the background WeChat calls (query,
	// close, refund): workers (default 32) and waiting calls (default 4096).
	CallWorkers int
	CallQueue   int
	// CallTimeout bounds one background WeChat call (default 10 s).
	CallTimeout time.Duration
	// RefundQPS is the merchant's budget of refund calls (create, query,
	// apply-abnormal) per second: WeChat allows 150 (default 150; negative
	// = unlimited). A call over it waits for the order's next scheduled
	// attempt.
	RefundQPS int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.OrderTTL, 15*time.Minute)
	def(&c.QueryAfter, time.Minute)
	def(&c.CloseGrace, time.Minute)
	def(&c.Idle, 30*time.Second)
	def(&c.RequestTimeout, 10*time.Second)
	def(&c.CallTimeout, 10*time.Second)
	def(&c.PrepayMaxWait, 200*time.Millisecond)
	def(&c.PrepayTimeout, 5*time.Second)
	if c.PrepayQPS == 0 {
		c.PrepayQPS = 600
	}
	if c.RefundQPS == 0 {
		c.RefundQPS = 150
	}
	if c.PrepayWorkers <= 0 {
		c.PrepayWorkers = 512
	}
	if c.PrepayQueue <= 0 {
		c.PrepayQueue = 4096
	}
	if c.Partitions <= 0 {
		c.Partitions = 16
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 65536
	}
	if c.CallWorkers <= 0 {
		c.CallWorkers = 32
	}
	if c.CallQueue <= 0 {
		c.CallQueue = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.AppID == "":
		return errors.New("actors: AppID is required")
	case c.MchID == "":
		return errors.New("actors: MchID is required")
	case c.NotifyURL == "":
		return errors.New("actors: NotifyURL is required")
	case c.OrderTTL < time.Minute:
		return fmt.Errorf("actors: OrderTTL %s is below WeChat's 1 minute minimum", c.OrderTTL)
	}
	return nil
}

// Metrics are the system's live counters, read by /metrics.
type Metrics struct {
	InFlight      atomic.Int64 // requests inside the actors
	LiveOrders    atomic.Int64 // order actors in memory
	Passivated    atomic.Int64 // order actors stopped for idleness
	Timers        atomic.Int64 // scheduled order timers
	CallsQueued   atomic.Int64 // background WeChat calls waiting or running
	CallsRejected atomic.Int64 // background calls refused because the queue was full
	StoreErrors   atomic.Int64
}

// System runs the order and inventory actors. It is safe for concurrent use.
type System struct {
	cfg       Config
	store     *store.Store
	wechat    WeChat
	as        *actor.ActorSystem
	managers  []*actor.PID
	inventory *Inventory
	timers    *timers
	calls     *executor // background calls: query, close, refund
	prepays   *executor // prepay calls, apart so timers never delay buyers
	budget    *budget   // prepay calls
	refunds   *budget   // refund calls
	// refundsFailing paces refund calls while WeChat is failing them
	// (WeChat allows 6 QPS then): until failingUntil (unix ms), a refund
	// call needs a token of both budgets.
	refundsFailing *budget
	failingUntil   atomic.Int64
	metrics        Metrics
	workers        *workers
	stopped        atomic.Bool
	closeOnce      sync.Once
}

// New starts the actor system over st. Call Recover before serving
// traffic, and Close to stop.
func New(cfg Config, st *store.Store, wc WeChat) (*System, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &System{cfg: cfg, store: st, wechat: wc}
	s.workers = newWorkers(dispatchWorkers, 300)
	s.as = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	s.calls = newExecutor(cfg.CallWorkers, cfg.CallQueue, &s.metrics)
	s.prepays = newExecutor(cfg.PrepayWorkers, cfg.PrepayQueue, &s.metrics)
	s.budget = newBudget(max(cfg.PrepayQPS, 0), cfg.PrepayMaxWait, cfg.Now)
	s.refunds = newBudget(max(cfg.RefundQPS, 0), 0, cfg.Now)
	s.refundsFailing = newBudget(failingRefundQPS, 0, cfg.Now)
	s.timers = newTimers(cfg.Now, func(otn string) bool { return s.send(&Tick{OutTradeNo: otn}) }, &s.metrics)
	s.inventory = newInventory(s)
	for i := 0; i < cfg.Partitions; i++ {
		pid := s.as.Root.Spawn(s.props(func() actor.Actor { return newManager(s) }))
		s.managers = append(s.managers, pid)
	}
	return s, nil
}

// failingRefundQPS is WeChat's refund rate while its refund calls fail,
// and failingFor how long a failure keeps wxpayd at it.
const (
	failingRefundQPS = 6
	failingFor       = time.Minute
)

// refundToken takes the tokens a refund call needs now.
func (s *System) refundToken() bool {
	if s.cfg.Now().UnixMilli() < s.failingUntil.Load() {
		if _, ok := s.refundsFailing.reserve(); !ok {
			return false
		}
	}
	_, ok := s.refunds.reserve()
	return ok
}

// refundFailed notes a refund call whose outcome is unknown (5xx, 429,
// timeout): refund calls slow to failingRefundQPS for failingFor.
func (s *System) refundFailed() {
	s.failingUntil.Store(s.cfg.Now().Add(failingFor).UnixMilli())
}

// dispatchWorkers is how many goroutines run actor mailboxes; more busy
// mailboxes than this run on goroutines of their own.
const dispatchWorkers = 128

// props makes the props of one of the system's actors.
func (s *System) props(producer func() actor.Actor) *actor.Props {
	return actor.PropsFromProducer(producer, actor.WithDispatcher(s.workers))
}

// Metrics returns the live counters.
func (s *System) Metrics() *Metrics { return &s.metrics }

// Inventory returns the SKU actors' registry.
func (s *System) Inventory() *Inventory { return s.inventory }

// Store returns the durable store.
func (s *System) Store() *store.Store { return s.store }

// Config returns the effective configuration.
func (s *System) Config() Config { return s.cfg }

// Recover resumes the timers of every non-final order, so an order that
// was PREPAID when the process died is still queried and closed.
func (s *System) Recover() (int, error) {
	n := 0
	err := s.store.ActiveOrders(func(otn string) error {
		// Due now: each order actor looks at its record and reschedules.
		s.timers.schedule(otn, s.cfg.Now())
		n++
		return nil
	})
	return n, err
}

// Run drives the timers and the idle sweep until ctx ends or Close is
// called.
func (s *System) Run(ctx context.Context) error {
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		// Sweeps visit only the children idle long enough, so they can be
		// frequent: each passivates a small slice.
		period := min(s.cfg.Idle/4, 100*time.Millisecond)
		if period < time.Millisecond {
			period = time.Millisecond
		}
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.timers.done:
				return
			case <-t.C:
				now := time.Now().UnixMilli() // idleness is wall-clock, not business time
				for _, m := range s.managers {
					s.as.Root.Send(m, &sweep{nowMs: now})
				}
			}
		}
	}()
	err := s.timers.run(ctx)
	<-sweepDone
	return err
}

func (s *System) managerFor(key string) *actor.PID {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return s.managers[h.Sum32()%uint32(len(s.managers))]
}

// Request sends an order message and waits for the order actor's Reply.
func (s *System) Request(ctx context.Context, msg OrderMessage) (Reply, error) {
	if s.stopped.Load() {
		return Reply{}, ErrStopped
	}
	if s.metrics.InFlight.Add(1) > s.cfg.MaxInFlight {
		s.metrics.InFlight.Add(-1)
		return Reply{}, ErrOverloaded
	}
	defer s.metrics.InFlight.Add(-1)
	timeout := s.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return Reply{}, ErrTimeout
	}
	ch := replyChans.Get().(chan *Reply)
	s.as.Root.Send(s.managerFor(msg.orderKey()), &call{msg: msg, reply: ch})
	// Wait on ctx alone when its deadline comes first: no timer to make.
	var expired <-chan time.Time
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var r *Reply
	select {
	case r = <-ch:
		replyChans.Put(ch) // answered, so empty: safe to reuse
	case <-ctx.Done():
		// The late answer goes to a channel nobody reuses.
		return Reply{}, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-expired:
		return Reply{}, ErrTimeout
	}
	if r.Err != nil {
		return *r, r.Err
	}
	return *r, nil
}

// replyChans recycles the reply channels of answered requests.
var replyChans = sync.Pool{New: func() any { return make(chan *Reply, 1) }}

// send delivers a message without waiting (timers, call results). It
// returns false when the system is stopped or overloaded; the caller
// retries later.
func (s *System) send(msg OrderMessage) bool {
	if s.stopped.Load() || s.metrics.InFlight.Load() >= s.cfg.MaxInFlight {
		return false
	}
	s.as.Root.Send(s.managerFor(msg.orderKey()), msg)
	return true
}

// deliver sends a WeChat call's result to its order actor. The result must
// arrive: it retries while the system runs.
func (s *System) deliver(msg OrderMessage) {
	for !s.send(msg) {
		if s.stopped.Load() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops intake, waits for background WeChat calls to finish (up to
// ctx's deadline) and stops every actor. Pending durable writes complete
// first: an actor stops only between messages.
func (s *System) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		s.stopped.Store(true)
		s.timers.stop()
		err = s.calls.close(ctx)
		if e := s.prepays.close(ctx); e != nil && err == nil {
			err = e
		}
		// Each order actor stops after the messages already in its mailbox,
		// so every write in progress completes before the store closes.
		for _, m := range s.managers {
			if _, e := s.as.Root.RequestFuture(m, &drain{}, time.Minute).Result(); e != nil && err == nil {
				err = fmt.Errorf("actors: drain: %w", e)
			}
		}
		s.inventory.stop()
		s.as.Shutdown()
		s.workers.close()
	})
	return err
}
