package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/bench/cpustat"
	"github.com/wxpayd/wxpayd/sink/webhook"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// Server benchmarks over loopback TCP, load generator included (both share
// the machine's cores). Run side by side:
//
//	go test -run '^$' -bench 'HelloWorld|SoldOut' -benchtime 3s -count 3 ./ingress/
//	go test -run '^$' -bench NotifyAck -benchtime 40000x -count 5 ./ingress/
//
// (NotifyAck prepares b.N orders before its timer starts: give it a count.)
//
// Diagnostics, by environment: WXPAYD_BENCH_CPUPROFILE=file profiles the
// timed window of BenchmarkNotifyAck alone; WXPAYD_BENCH_STORE_METRICS=file
// writes Pebble's metrics after it; WXPAYD_BENCH_PARALLELISM sets its
// senders per core.
//
// BenchmarkSoldOut / BenchmarkHelloWorld is the issue's bar (>= 0.5):
// the same client sends the same request shape (POST, JSON body, bearer
// token) to wxpayd's order route for a sold-out SKU and to a fasthttp
// handler that only answers.

func loadClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: addr, MaxConns: 256, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
}

func benchPost(b *testing.B, c *fasthttp.HostClient, url string, token string, body []byte, want int) {
	b.Helper()
	b.SetParallelism(32)
	b.ResetTimer()
	var bad atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(url)
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer "+token)
			req.SetBody(body)
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != want {
				bad.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d requests failed or answered other than %d", n, want)
	}
}

func BenchmarkHelloWorld(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"hello":"world"}`)
	}}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown()
	benchPost(b, loadClient(ln.Addr().String()), "http://"+ln.Addr().String()+"/api/v1/orders", "x", []byte(`{"sku":"gone","quantity":1}`), 200)
}

func BenchmarkSoldOut(b *testing.B) {
	s := newStack(b, stackOpts{})
	s.putSKU("gone", 0)
	tok, _ := s.srv.sess.issue("bench-buyer")
	addr := s.url[len("http://"):]
	benchPost(b, loadClient(addr), s.url+"/api/v1/orders", tok, []byte(`{"sku":"gone","quantity":1}`), 409)
}

// BenchmarkNotifyAck measures durable acknowledgements of first-time
// payment notifications: verify, decrypt, the order actor's fsync'd PAID
// write, 204. Orders are created and notifications signed before the
// timer starts. It reports acks/s and the latency percentiles.
//
//	warm: the order's actor is still in memory (its buyer paid within the
//	      idle time of prepay: the common case in a flash sale).
//	cold: every order's actor has passivated, so each notification first
//	      reloads the order from the store (a slow payer).
//
// Side by side, the same with webhooks on (the default subscription, so
// each PAID write also queues a webhook entry; webhooks_bench_test.go):
//
//	-queued:   the deliverer waits until the timed window ends (the cost
//	           of queueing in the PAID write alone);
//	-webhooks: the deliverer posts to a local endpoint (a child process)
//	           during the window.
func BenchmarkNotifyAck(b *testing.B) {
	for _, temp := range []struct {
		name string
		idle time.Duration
		cold bool
	}{{"warm", time.Hour, false}, {"cold", 200 * time.Millisecond, true}} {
		b.Run(temp.name, func(b *testing.B) { benchNotifyAck(b, temp.idle, temp.cold, hooksOff) })
		b.Run(temp.name+"-queued", func(b *testing.B) { benchNotifyAck(b, temp.idle, temp.cold, hooksQueued) })
		b.Run(temp.name+"-webhooks", func(b *testing.B) { benchNotifyAck(b, temp.idle, temp.cold, hooksDeliver) })
	}
}

// notifyParallelism is goroutines per GOMAXPROCS sending notifications
// (WXPAYD_BENCH_PARALLELISM, default 16: 32 in flight on 2 cores).
func notifyParallelism() int {
	if p, err := strconv.Atoi(os.Getenv("WXPAYD_BENCH_PARALLELISM")); err == nil && p > 0 {
		return p
	}
	return 16
}

func benchNotifyAck(b *testing.B, idle time.Duration, cold bool, hooks string) {
	// The set-up prepays are not what is timed: unpaced, and answered by a
	// constant WeChat. The simulator would keep every order in this
	// process's heap, where the collector traces it in every timed cycle;
	// the real WeChat keeps its ledger in its own machines.
	o := stackOpts{idle: idle, prepayQPS: -1, wechatURL: constantWeChat(b, "", "")}
	if hooks != hooksOff {
		sub, err := webhook.NewSubscription(nil)
		if err != nil {
			b.Fatal(err)
		}
		o.store.Webhook = sub.Match
	}
	s := newStack(b, o)
	ctx := context.Background()
	n := b.N
	if _, err := s.sys.Inventory().Put(ctx, skuOf("ack", int64(n))); err != nil {
		b.Fatal(err)
	}
	backend, err := openssl.Select("auto", "")
	if err != nil {
		b.Fatal(err)
	}
	wechat, _ := backend.NewPrivateKey(s.id.WechatPayKey)
	// Headers as "name\x00value\x00..." bytes: the generator's 40,000
	// prepared notifications hold no pointers the server's garbage
	// collector would have to trace (maps of strings did, which a separate
	// WeChat process would not cost the server).
	type prepared struct {
		hdr  []byte
		body []byte
	}
	notes := make([]prepared, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			otn := fmt.Sprintf("01ACK%019d", i)
			r, err := s.sys.Request(ctx, &actors.Prepay{OutTradeNo: otn, OpenID: "buyer-" + strconv.Itoa(i), SKU: "ack", Quantity: 1})
			if err != nil || r.Order.State != store.StatePrepaid {
				b.Errorf("prepay %s: %v %s", otn, err, r.Order.State)
				return
			}
			nt := s.makeNotice(s.transactionJSON(otn, "buyer-"+strconv.Itoa(i), 1999, nil), wxpay.AlgorithmAESGCM, time.Now(), s.id.PublicKeyID, wechat)
			var hdr []byte
			for k, v := range nt.headers {
				hdr = append(append(append(append(hdr, k...), 0), v...), 0)
			}
			notes[i] = prepared{hdr: hdr, body: nt.body}
		}(i)
	}
	wg.Wait()
	// The set-up's writes are flushed and compacted before the clock runs:
	// otherwise where Pebble's thresholds fall decides whether a flush and
	// a compaction of the set-up land in the timed window.
	settle, cancelSettle := context.WithTimeout(ctx, time.Minute)
	if err := s.st.Settle(settle); err != nil {
		b.Fatalf("settling the store: %v", err)
	}
	cancelSettle()
	live := s.sys.Metrics().LiveOrders.Load()
	if cold {
		deadline := time.Now().Add(time.Minute)
		for live = s.sys.Metrics().LiveOrders.Load(); live > 0 && time.Now().Before(deadline); live = s.sys.Metrics().LiveOrders.Load() {
			time.Sleep(50 * time.Millisecond)
		}
		if live > 0 {
			b.Fatalf("%d order actors still live after a minute", live)
		}
	} else if live < int64(n) {
		b.Fatalf("only %d of %d order actors live", live, n)
	}
	c := loadClient(s.url[len("http://"):])
	lat := make([]time.Duration, n)
	var next, bad atomic.Int64
	var wh *benchHooks
	if hooks != hooksOff {
		wh = newBenchHooks(b, s.st)
		if hooks == hooksDeliver {
			wh.run()
		}
	}
	b.ReportAllocs()
	b.SetParallelism(notifyParallelism())
	stopProfile := profileTimed(b)
	b.ResetTimer()
	start := time.Now()
	cpu0, cpuOK := cpustat.Process()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			i := int(next.Add(1) - 1)
			req.Reset()
			req.SetRequestURI(s.url + "/wxpay/v3/notify")
			req.Header.SetMethod("POST")
			for h := notes[i].hdr; len(h) > 0; {
				var k, v []byte
				k, h, _ = bytes.Cut(h, []byte{0})
				v, h, _ = bytes.Cut(h, []byte{0})
				req.Header.SetBytesKV(k, v)
			}
			req.SetBody(notes[i].body)
			t0 := time.Now()
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 204 {
				bad.Add(1)
			}
			lat[i] = time.Since(t0)
		}
	})
	b.StopTimer()
	took := time.Since(start)
	cpu1, _ := cpustat.Process()
	if wh != nil {
		wh.report(n, took)
	}
	stopProfile()
	if path := os.Getenv("WXPAYD_BENCH_STORE_METRICS"); path != "" {
		// Pebble's view after the run: LSM shape, cache hits, compactions.
		if err := os.WriteFile(path, []byte(s.st.Metrics().String()), 0o644); err != nil {
			b.Error(err)
		}
	}
	if bad.Load() > 0 {
		b.Fatalf("%d notifications not acknowledged", bad.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(n-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(n)/took.Seconds(), "acks/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
	if cpuOK {
		// CPU time per ack over the whole process (server and generator):
		// unlike acks/s it does not depend on what else the machine runs.
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), "cpu-us/ack")
	}
}

// profileTimed writes a CPU profile of the timed window alone to the file
// named by WXPAYD_BENCH_CPUPROFILE, when set: go test's -cpuprofile would
// also take in the set-up, which dominates these benchmarks.
func profileTimed(b *testing.B) (stop func()) {
	path := os.Getenv("WXPAYD_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

func skuOf(id string, stock int64) storeSKU {
	return storeSKU{SKU: id, Description: "bench", Price: 1999, Stock: stock}
}

type storeSKU = store.SKU

// BenchmarkPrepayOverhead measures a full order creation (session check,
// reservation, budget, durable CREATED, WeChat prepay, durable PREPAID,
// paySign) over loopback and subtracts WeChat's (the simulator's) own time
// per order: the rest is wxpayd's latency. Two buyers at a time, below
// the prepay budget.
func BenchmarkPrepayOverhead(b *testing.B) {
	s := newStack(b, stackOpts{prepayQPS: -1})
	if _, err := s.sys.Inventory().Put(context.Background(), skuOf("p", int64(b.N)+100)); err != nil {
		b.Fatal(err)
	}
	tok, _ := s.srv.sess.issue("bench-buyer")
	c := loadClient(s.url[len("http://"):])
	type sample struct {
		otn   string
		total time.Duration
	}
	samples := make([]sample, b.N)
	var next, bad atomic.Int64
	b.SetParallelism(1) // 2 concurrent buyers: below saturation on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			i := next.Add(1) - 1
			req.Reset()
			req.SetRequestURI(s.url + "/api/v1/orders")
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.SetBodyString(`{"sku":"p","quantity":1}`)
			t0 := time.Now()
			err := c.Do(req, resp)
			d := time.Since(t0)
			if err != nil || resp.StatusCode() != 201 {
				bad.Add(1)
				continue
			}
			var v struct {
				OutTradeNo string `json:"out_trade_no"`
			}
			_ = json.Unmarshal(resp.Body(), &v)
			samples[i] = sample{v.OutTradeNo, d}
		}
	})
	b.StopTimer()
	if bad.Load() > 0 {
		b.Fatalf("%d orders failed", bad.Load())
	}
	own := make([]time.Duration, 0, b.N)
	s.prep.mu.Lock()
	for _, sm := range samples {
		own = append(own, sm.total-s.prep.took[sm.otn])
	}
	s.prep.mu.Unlock()
	sort.Slice(own, func(i, j int) bool { return own[i] < own[j] })
	ms := func(p float64) float64 { return float64(own[int(p*float64(len(own)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.50), "own-p50-ms")
	b.ReportMetric(ms(0.99), "own-p99-ms")
}
