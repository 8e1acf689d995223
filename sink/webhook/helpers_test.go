package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/itest"
)

var testSecret = []byte("test-webhook-secret-0123456789")

// fakeClock is a clock the test moves.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ms.Store(t.UnixMilli())
	return c
}
func (c *fakeClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// delivery is one request the receiver took.
type delivery struct {
	id      string
	otn     string
	seq     uint64
	attempt string
}

// receiver is the shop's endpoint: it checks every request's signature
// with its own HMAC code (not the package's Verify), and answers what
// answer says. Accepted requests are recorded in arrival order, before
// any delay, as a shop that processes first and answers late would.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret []byte
	now    func() time.Time // the receiver's clock, for the replay window
	window time.Duration    // the replay window (5 minutes)
	answer func(d delivery) (status int, delay time.Duration, hangUp bool)

	mu        sync.Mutex
	accepted  []delivery
	tried     []delivery
	badSig    []string
	inflight  int
	maxFlight int
}

func newReceiver(t testing.TB, answer func(delivery) (int, time.Duration, bool)) *receiver {
	r := &receiver{t: t, secret: testSecret, now: time.Now, window: 5 * time.Minute, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// checkSignature is the shop's side of the scheme, written out here:
// t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>, within window.
func checkSignature(secret []byte, header string, body []byte, now time.Time, window time.Duration) bool {
	var ts string
	var sigs []string
	for _, kv := range strings.Split(header, ",") {
		switch {
		case strings.HasPrefix(kv, "t="):
			ts = kv[2:]
		case strings.HasPrefix(kv, "v1="):
			sigs = append(sigs, kv[3:])
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if age := time.Duration(now.Unix()-sec) * time.Second; age > window || age < -window {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	want := m.Sum(nil)
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	var e event.Event
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil {
		r.t.Errorf("bad request: %s %s %q", req.Method, req.Header.Get("Content-Type"), body)
		w.WriteHeader(400)
		return
	}
	d := delivery{id: e.EventID, otn: e.OutTradeNo, seq: e.Seq, attempt: req.Header.Get("Wxpayd-Attempt")}
	if !checkSignature(r.secret, req.Header.Get("Wxpayd-Signature"), body, r.now(), r.window) || req.Header.Get("Wxpayd-Event-Id") != e.EventID {
		r.mu.Lock()
		r.badSig = append(r.badSig, e.EventID)
		r.mu.Unlock()
		w.WriteHeader(401)
		return
	}
	status, delay, hangUp := r.answer(d)
	r.mu.Lock()
	r.tried = append(r.tried, d)
	if status >= 200 && status < 300 && !hangUp {
		r.accepted = append(r.accepted, d)
	}
	r.inflight++
	r.maxFlight = max(r.maxFlight, r.inflight)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight--
		r.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
		}
	}
	if hangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
	}
	w.WriteHeader(status)
}

func (r *receiver) snapshot() (accepted, tried []delivery, bad []string, maxFlight int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.accepted...), append([]delivery(nil), r.tried...), append([]string(nil), r.badSig...), r.maxFlight
}

// openStore opens a store whose webhook queue takes sub's events.
func openStore(t testing.TB, dir string, sub *Subscription) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{NoSync: true, Webhook: sub.Match})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // after the deliverers' (cleanups run last first)
	return st
}

// commit writes one transition of otn with one event, as an order actor
// does.
func commit(t testing.TB, st *store.Store, otn string, seq uint64, typ string) {
	w := st.NewWrite()
	w.PutOrder(&store.Order{OutTradeNo: otn, State: store.StatePaid, Seq: seq, SKU: "tea", Total: 1999})
	w.AddEvent(&event.Event{EventID: event.ID(otn, seq), Type: typ, OutTradeNo: otn, Seq: seq,
		TimeMs: time.Now().UnixMilli(), State: "PAID", SKU: "tea", Amount: 1999})
	if err := w.Commit(); err != nil {
		t.Error(err)
	}
}

// runDeliverer starts a Deliverer on st; stop cuts it off at once (as a
// kill would: attempts in flight are abandoned, nothing more is written).
func runDeliverer(t testing.TB, st *store.Store, cfg Config) (d *Deliverer, stop func()) {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = d.Close(ctx)
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// eventually is itest.Eventually every 5 ms.
func eventually(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	itest.Eventually(t, d, 5*time.Millisecond, what, func() (bool, string) { return ok(), "" })
}

// checkOrder holds accepted to per-order order: the first acceptance of
// an order's event comes after the first acceptance of each of its
// earlier expected events. want lists every expected event id by order,
// in seq order.
func checkOrder(t testing.TB, accepted []delivery, want map[string][]uint64) {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range accepted {
		if seen[d.id] {
			continue
		}
		for _, s := range want[d.otn] {
			if s >= d.seq {
				break
			}
			if !seen[event.ID(d.otn, s)] {
				t.Errorf("%s accepted before %s", d.id, event.ID(d.otn, s))
			}
		}
		seen[d.id] = true
	}
	n := 0
	for otn, seqs := range want {
		for _, s := range seqs {
			n++
			if !seen[event.ID(otn, s)] {
				t.Errorf("%s never delivered", event.ID(otn, s))
			}
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events accepted, want %d", len(seen), n)
	}
}
