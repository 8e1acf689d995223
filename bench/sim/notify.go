package sim

import (
	"container/heap"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Notification delivery.
//
// A timer heap orders every scheduled task (a delivery attempt or a refund
// completion) by due time. One scheduler goroutine pops due tasks and hands
// them to a bounded pool of workers over a bounded channel; a worker signs
// and POSTs the notification and, for a genuine one that was not answered
// 2xx within the timeout, schedules the next attempt on WeChat's retry
// schedule (RetrySchedule divided by the speedup), giving up after the last.
// Fault copies (duplicate, tampered, stale) are single extra deliveries.
//
// Bounds: pending counts genuine notifications not yet finished and refunds
// not yet completed; reserve refuses past Config.MaxPending, so the heap
// holds at most 4x that many tasks (each genuine delivery has at most three
// extra copies).

// DeliveryRecord is the outcome of one notification copy, kept with its
// order and shown by GET /sim/v1/orders/{out_trade_no}.
type DeliveryRecord struct {
	ID           string    `json:"id"`
	EventType    string    `json:"event_type"`
	Kind         string    `json:"kind"` // genuine, duplicate, tampered or stale
	URL          string    `json:"url"`
	Attempts     []Attempt `json:"attempts"`
	Acknowledged bool      `json:"acknowledged"`
	GivenUp      bool      `json:"given_up"`
}

// Attempt is one delivery attempt.
type Attempt struct {
	At     time.Time `json:"at"`               // simulator clock when sent
	Status int       `json:"status,omitempty"` // HTTP status, 0 when none
	Error  string    `json:"error,omitempty"`  // transport error or timeout
	Serial string    `json:"serial,omitempty"` // Wechatpay-Serial used
}

// delivery is one notification copy to send.
type delivery struct {
	o        *order
	rec      *DeliveryRecord
	url      string
	body     []byte
	fault    faultKind
	v2       bool // APIv2 XML: no Wechatpay-* headers; ack needs return_code SUCCESS
	attempts int
	extras   []*delivery // fault copies to send with the first attempt
}

// task is a heap entry.
type task struct {
	due time.Time
	seq uint64 // FIFO among equal due times
	d   *delivery
	fn  func()
	idx int
}

type taskHeap []*task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *taskHeap) Push(x any)   { t := x.(*task); t.idx = len(*h); *h = append(*h, t) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

type notifier struct {
	s       *Server
	client  *fasthttp.Client
	timeout time.Duration
	max     int64
	pending atomic.Int64

	mu   sync.Mutex
	h    taskHeap
	seq  uint64
	wake chan struct{}

	work      chan *task
	quit      chan struct{}
	quitOnce  sync.Once
	wg        sync.WaitGroup
	startOnce sync.Once
}

func newNotifier(s *Server) *notifier {
	w := s.cfg.notifyWorkers()
	t := s.cfg.notifyTimeout()
	return &notifier{
		s: s, timeout: t, max: int64(s.cfg.maxPending()),
		wake: make(chan struct{}, 1), work: make(chan *task, w), quit: make(chan struct{}),
		client: &fasthttp.Client{
			Name:                "Mozilla/4.0",
			ReadTimeout:         t,
			WriteTimeout:        t,
			MaxConnsPerHost:     2 * w,
			MaxIdleConnDuration: 4 * time.Second, // below common server idle timeouts
			MaxResponseBodySize: 64 << 10,
			RetryIfErr:          retryStaleConn,
		},
	}
}

func (n *notifier) start() {
	n.startOnce.Do(func() {
		n.spawn(n.loop)
		for range n.s.cfg.notifyWorkers() {
			n.spawn(n.worker)
		}
	})
}

// spawn runs f in a goroutine counted by wg.
func (n *notifier) spawn(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *notifier) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.h)
}

// reserve takes a pending slot for a genuine notification (or a refund that
// will produce one); false when MaxPending are in flight.
func (n *notifier) reserve() bool {
	if n.pending.Add(1) > n.max {
		n.pending.Add(-1)
		return false
	}
	return true
}

func (n *notifier) release() { n.pending.Add(-1) }

// schedule pushes t; it never blocks and is not bounded by itself (callers
// reserve first).
func (n *notifier) schedule(t *task) {
	n.mu.Lock()
	n.seq++
	t.seq = n.seq
	heap.Push(&n.h, t)
	head := n.h[0] == t
	n.mu.Unlock()
	if head {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
}

// submit schedules a genuine notification's first attempt and its extra
// copies (a delayed duplicate DefaultDupDelay later). The caller reserved a
// slot.
func (n *notifier) submit(d *delivery, now time.Time) {
	n.s.stats.notifyCreated.Add(1)
	for _, x := range d.extras {
		due := now
		if x.fault == faultDup && n.s.chance(0.5) {
			due = now.Add(n.s.cfg.scaled(DefaultDupDelay))
		}
		n.s.stats.faults[x.fault].sent.Add(1)
		n.schedule(&task{due: due, d: x})
	}
	d.extras = nil
	n.schedule(&task{due: now, d: d})
}

// loop hands due tasks to the workers.
func (n *notifier) loop() {
	clock := n.s.clock
	for {
		n.mu.Lock()
		if len(n.h) == 0 {
			n.mu.Unlock()
			select {
			case <-n.wake:
				continue
			case <-n.quit:
				return
			}
		}
		head := n.h[0]
		now := clock.Now()
		if !head.due.After(now) {
			heap.Pop(&n.h)
			n.mu.Unlock()
			select {
			case n.work <- head:
			case <-n.quit:
				return
			}
			continue
		}
		wait := head.due.Sub(now)
		n.mu.Unlock()
		select {
		case <-clock.After(wait):
		case <-n.wake:
		case <-n.quit:
			return
		}
	}
}

func (n *notifier) worker() {
	for {
		select {
		case t := <-n.work:
			if t.fn != nil {
				t.fn()
			} else {
				n.deliver(t.d)
			}
		case <-n.quit:
			return
		}
	}
}

// close stops the scheduler and waits for the workers within ctx.
func (n *notifier) close(ctx context.Context) error {
	n.quitOnce.Do(func() { close(n.quit) })
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.client.CloseIdleConnections()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sim: notification workers still running: %w", ctx.Err())
	}
}

// newDelivery builds a genuine APIv3 notification for o (caller holds the
// shard) and decides its fault copies: the envelope of §5.1 with the
// resource encrypted under the APIv3 key.
func (s *Server) newDelivery(o *order, event, originalType, summary, url string, plain []byte, now time.Time) *delivery {
	nonce := randAlnum(12)
	ct, err := s.aead.Seal(nonce, originalType, plain)
	if err != nil { // unreachable: the nonce is 12 bytes
		panic("sim: seal notification: " + err.Error())
	}
	id := newUUID()
	ob := newObj(make([]byte, 0, 256+len(ct)))
	ob.str("id", id)
	ob.str("create_time", rfc3339(now))
	ob.str("resource_type", "encrypt-resource")
	ob.str("event_type", event)
	ob.str("summary", summary)
	r := ob.obj("resource")
	r.str("original_type", originalType)
	r.str("algorithm", wxpay.AlgorithmAESGCM)
	r.str("ciphertext", ct)
	r.str("associated_data", originalType)
	r.str("nonce", nonce)
	r.end(ob)
	body := ob.done()
	return s.withFaults(o, &delivery{o: o, url: url, body: body, fault: faultNone}, id, event)
}

// withFaults attaches d's record to o and draws its extra copies.
func (s *Server) withFaults(o *order, d *delivery, id, event string) *delivery {
	rec := func(kind string) *DeliveryRecord {
		r := &DeliveryRecord{ID: id, EventType: event, Kind: kind, URL: d.url}
		o.deliveries = append(o.deliveries, r)
		return r
	}
	d.rec = rec("genuine")
	for k := faultDup; k < numFaults; k++ {
		p := [numFaults]float64{s.cfg.DupRate, s.cfg.TamperRate, s.cfg.StaleRate}[k]
		if k == faultStale && d.v2 { // APIv2 notifications carry no timestamp
			continue
		}
		if s.chance(p) {
			d.extras = append(d.extras, &delivery{o: o, rec: rec(faultNames[k]), url: d.url, body: d.body, fault: k, v2: d.v2})
		}
	}
	return d
}

// deliver makes one attempt.
func (n *notifier) deliver(d *delivery) {
	s := n.s
	now := s.clock.Now()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(d.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	att := Attempt{At: now}
	body := d.body
	if d.v2 {
		req.Header.SetContentType("text/xml")
		if d.fault == faultTamper {
			body = v2Tamper(body)
		}
	} else {
		key, serial := s.notifyKey()
		ts := now.Unix()
		if d.fault == faultStale {
			ts -= int64(DefaultStaleAge / time.Second)
		}
		tss := strconv.FormatInt(ts, 10)
		nonce := wxpay.NewNonce()
		sig, err := wxpay.SignResponse(key, tss, nonce, body)
		if err != nil {
			s.log.Error("sign notification", "err", err)
			sig = ""
		}
		if d.fault == faultTamper && len(sig) > len(wxpay.SignTestPrefix) {
			// A probe: same length, so only the signature check rejects it.
			sig = wxpay.SignTestPrefix + sig[len(wxpay.SignTestPrefix):]
		}
		req.Header.SetContentType("application/json")
		req.Header.Set(wxpay.HeaderTimestamp, tss)
		req.Header.Set(wxpay.HeaderNonce, nonce)
		req.Header.Set(wxpay.HeaderSignature, sig)
		req.Header.Set(wxpay.HeaderSerial, serial)
		req.Header.Set(wxpay.HeaderSignatureType, wxpay.SignatureType)
		req.Header.Set(wxpay.HeaderRequestID, s.requestID())
		att.Serial = serial
	}
	req.SetBodyRaw(body)
	err := n.client.DoTimeout(req, resp, n.timeout)
	ok := false
	if err != nil {
		att.Error = err.Error()
	} else {
		att.Status = resp.StatusCode()
		ok = att.Status >= 200 && att.Status < 300
		if ok && d.v2 {
			ok = v2Acked(resp.Body())
		}
	}
	n.record(d, att, ok, err != nil)
}

// record stores the outcome and schedules the next attempt or gives up.
func (n *notifier) record(d *delivery, att Attempt, ok, transportErr bool) {
	s := n.s
	d.attempts++
	var next time.Duration
	retry := false
	o := d.o
	o.sh.mu.Lock()
	if len(d.rec.Attempts) < len(RetrySchedule)+1 {
		d.rec.Attempts = append(d.rec.Attempts, att)
	}
	if d.fault != faultNone {
		f := &s.stats.faults[d.fault]
		switch {
		case ok:
			f.accepted.Add(1)
			d.rec.Acknowledged = true
		case transportErr:
			f.failed.Add(1)
		default:
			f.rejected.Add(1)
		}
		o.sh.mu.Unlock()
		return
	}
	s.stats.notifyAttempt.Add(1)
	if d.attempts > 1 {
		s.stats.notifyRetried.Add(1)
	}
	switch {
	case ok:
		d.rec.Acknowledged = true
		s.stats.notifyAcked.Add(1)
	case d.attempts <= len(RetrySchedule):
		s.stats.notifyFailed.Add(1)
		next = s.cfg.scaled(RetrySchedule[d.attempts-1])
		retry = true
	default:
		s.stats.notifyFailed.Add(1)
		d.rec.GivenUp = true
		s.stats.notifyGivenUp.Add(1)
		s.log.Warn("notification given up", "id", d.rec.ID, "url", d.url, "attempts", d.attempts)
	}
	o.sh.mu.Unlock()
	if retry {
		n.schedule(&task{due: s.clock.Now().Add(next), d: d})
		return
	}
	n.release()
}

// retryStaleConn retries a delivery once when the merchant closed a pooled
// keep-alive connection before answering anything (the request was not
// processed): a fresh connection is not a new attempt.
func retryStaleConn(_ *fasthttp.Request, attempts int, err error) (bool, bool) {
	return false, attempts == 1 && (errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF))
}

// newUUID returns a random RFC 4122 version-4 UUID, the form of WeChat's
// notification ids.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("sim: crypto/rand: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out)
}
