package sim

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// Benchmarks of the simulator's two hot paths on this machine:
//
//	go test -run '^$' -bench 'Prepay|Notify' -benchtime 4000x ./bench/sim/
//
// BenchmarkPrepay calls the handler in-process (no sockets): authenticate
// (RSA verify), decode and validate, store, sign the answer (RSA sign).
// BenchmarkPrepayHTTP adds fasthttp over loopback. The merchant's request
// signatures are made before the timer starts. BenchmarkNotify pays
// orders and waits until every TRANSACTION.SUCCESS notification (encrypted,
// signed, POSTed over loopback) has been acknowledged by a merchant that
// answers 204 at once. Each reports answers/s or notifications/s.

func benchBackends(b *testing.B) []wxpay.Backend {
	out := []wxpay.Backend{wxpay.GoBackend}
	if o, err := openssl.Select(openssl.NameOpenSSL, ""); err == nil {
		out = append(out, o)
	} else {
		b.Logf("openssl backend unavailable: %v", err)
	}
	return out
}

func benchSim(b *testing.B, backend wxpay.Backend, mod func(*Config)) *Server {
	b.Helper()
	cfg := Config{
		Identity: identity(b), Listen: "127.0.0.1:0", Backend: backend, RateLimit: RateLimitOff,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// signedPrepays returns n signed prepay requests with distinct out_trade_no.
func signedPrepays(b *testing.B, id *Identity, n int, tag string) []*fasthttp.Request {
	b.Helper()
	backend := benchBackends(b)[len(benchBackends(b))-1]
	mk, err := backend.NewPrivateKey(id.MerchantKey)
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
	now := time.Now().Unix()
	reqs := make([]*fasthttp.Request, n)
	for i := range reqs {
		body, _ := json.Marshal(prepayReq(id, "BENCH"+tag+strconv.Itoa(i), "oBenchBuyer000000000000000", "https://m.example/wxpay/notify"))
		auth, err := signer.Authorization("POST", "/v3/pay/transactions/jsapi", body, now, wxpay.NewNonce())
		if err != nil {
			b.Fatal(err)
		}
		r := new(fasthttp.Request)
		r.Header.SetMethod("POST")
		r.SetRequestURI("http://127.0.0.1/v3/pay/transactions/jsapi")
		r.Header.Set("Authorization", auth)
		r.Header.SetContentType("application/json")
		r.SetBody(body)
		reqs[i] = r
	}
	return reqs
}

var benchTag atomic.Uint64

// cpuTime returns the process's user+system CPU time. Per-op CPU time is
// steadier than wall time on a shared machine, and 1/cpu-op per core is the
// capacity when nothing else runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports the wall rate and the process CPU time per op (which,
// in the HTTP and notification benchmarks, includes the in-process client or
// merchant).
func reportRates(b *testing.B, cpu0 time.Duration, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkPrepay(b *testing.B) {
	for _, backend := range benchBackends(b) {
		b.Run("backend="+backend.Name(), func(b *testing.B) {
			s := benchSim(b, backend, nil)
			reqs := signedPrepays(b, s.Identity(), b.N, strconv.FormatUint(benchTag.Add(1), 36)+"x")
			addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
			var next atomic.Int64
			var fails atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				for pb.Next() {
					i := next.Add(1) - 1
					ctx.Init(reqs[i], addr, nil)
					s.handle(&ctx)
					if ctx.Response.StatusCode() != 200 {
						if fails.Add(1) == 1 {
							b.Logf("answer %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
						}
					}
				}
			})
			b.StopTimer()
			if f := fails.Load(); f > 0 {
				b.Fatalf("%d prepays failed", f)
			}
			reportRates(b, cpu0, "answers")
		})
	}
}

func BenchmarkPrepayHTTP(b *testing.B) {
	for _, backend := range benchBackends(b) {
		b.Run("backend="+backend.Name(), func(b *testing.B) {
			s := benchSim(b, backend, nil)
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			defer s.Close(b.Context())
			reqs := signedPrepays(b, s.Identity(), b.N, strconv.FormatUint(benchTag.Add(1), 36)+"h")
			hc := &fasthttp.HostClient{Addr: s.Addr(), MaxConns: 64}
			var next atomic.Int64
			var fails atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					i := next.Add(1) - 1
					if err := hc.Do(reqs[i], resp); err != nil || resp.StatusCode() != 200 {
						fails.Add(1)
					}
				}
			})
			b.StopTimer()
			if f := fails.Load(); f > 0 {
				b.Fatalf("%d prepays failed", f)
			}
			reportRates(b, cpu0, "answers")
		})
	}
}

func BenchmarkNotify(b *testing.B) {
	for _, backend := range benchBackends(b) {
		b.Run("backend="+backend.Name(), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			merchant := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) }}
			go merchant.Serve(ln)
			defer merchant.Shutdown()
			url := "http://" + ln.Addr().String() + "/wxpay/notify"
			s := benchSim(b, backend, func(c *Config) { c.MaxPending = b.N + 1 })
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			defer s.Close(b.Context())
			now := time.Now()
			tag := strconv.FormatUint(benchTag.Add(1), 36) + "n"
			pids := make([]string, b.N)
			for i := range pids {
				o := &order{
					mchID: s.id.MchID, appID: s.id.AppID, outTradeNo: "N" + tag + strconv.Itoa(i), desc: "bench",
					notifyURL: url, openID: "oBench", total: 100, currency: "CNY", created: now, expire: now.Add(time.Hour),
				}
				if pids[i], _ = s.createOrReuse(o, now, func(*order) bool { return true }); pids[i] == "" {
					b.Fatal("create order")
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for _, pid := range pids {
				if _, err := s.Pay(pid, "oBench"); err != nil {
					b.Fatal(err)
				}
			}
			for s.stats.notifyAcked.Load() < uint64(b.N) {
				if s.stats.notifyFailed.Load() > 0 {
					b.Fatalf("%d deliveries failed", s.stats.notifyFailed.Load())
				}
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			reportRates(b, cpu0, "notifications")
		})
	}
}

// BenchmarkPrepayDecode measures the reflection-based JSON decoding and the
// validation of a prepay body alone, to weigh it against the RSA work.
func BenchmarkPrepayDecode(b *testing.B) {
	s := benchSim(b, wxpay.GoBackend, nil)
	body, _ := json.Marshal(prepayReq(s.Identity(), "BENCH000001", "oBenchBuyer000000000000000", "https://m.example/wxpay/notify"))
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var p prepayBody
		if e := decodeBody(body, &p); e != nil {
			b.Fatal(e.message)
		}
		if _, e := s.validatePrepay(&p, s.id.MchID, now); e != nil {
			b.Fatal(e.message)
		}
	}
}

// BenchmarkOrderMemory reports the heap held per stored order, to size
// --max-orders (the default 2,000,000).
func BenchmarkOrderMemory(b *testing.B) {
	s := benchSim(b, wxpay.GoBackend, nil)
	now := time.Now()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range b.N {
		o := &order{
			mchID: s.id.MchID, appID: s.id.AppID, outTradeNo: "MEM" + strconv.Itoa(1e9+i), desc: "Image形象店-深圳腾大-QQ公仔",
			notifyURL: "https://m.example/wxpay/notify", openID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", total: 100, currency: "CNY",
			created: now, expire: now.Add(time.Hour),
		}
		s.createOrReuse(o, now, func(*order) bool { return true })
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "heapB/order")
	runtime.KeepAlive(s)
}
