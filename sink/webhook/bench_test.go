package webhook

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/bench/cpustat"
)

// BenchmarkDeliver measures delivery throughput: b.N events already
// queued (the timer starts after they are committed), delivered to an
// endpoint in a child process that answers 204 (after a delay, for the
// slow-endpoint cases), with the default Concurrency of 16. It reports
// events/s and this process's CPU per delivered event.
//
//	go test -run '^$' -bench Deliver -benchtime 20000x -count 3 ./sink/webhook/
//
//	1-per-order:  every event of a different order (no ordering waits)
//	4-per-order:  four events per order, which go one after another
//	5ms-endpoint: 1-per-order to an endpoint answering after 5 ms
func BenchmarkDeliver(b *testing.B) {
	b.Run("1-per-order", func(b *testing.B) { benchDeliver(b, 1, 0) })
	b.Run("4-per-order", func(b *testing.B) { benchDeliver(b, 4, 0) })
	b.Run("5ms-endpoint", func(b *testing.B) { benchDeliver(b, 1, 5*time.Millisecond) })
}

func benchDeliver(b *testing.B, perOrder int, delay time.Duration) {
	sub, _ := NewSubscription([]string{event.OrderPaid, event.OrderRefunded})
	st := openStore(b, b.TempDir(), sub)
	types := []string{event.OrderPaid, event.OrderRefunded}
	for i := range b.N {
		otn := fmt.Sprintf("01B%09d", i/perOrder)
		commit(b, st, otn, uint64(i%perOrder+1), types[min(i%perOrder, 1)])
	}
	url := benchEndpoint(b, delay)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	cpu0, cpuOK := cpustat.Process()
	d, stop := runDeliverer(b, st, Config{URL: url})
	for d.Stats().Delivered < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	cpu1, _ := cpustat.Process()
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/took.Seconds(), "events/s")
	if cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-us/event")
	}
	if s := d.Stats(); s.FailedAttempts > 0 || s.Queued != 0 {
		b.Fatalf("stats %+v", s)
	}
}

// benchEndpoint starts TestBenchEndpoint in a child process and returns
// its URL.
func benchEndpoint(b *testing.B, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchEndpoint$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WXPAYD_BENCH_WEBHOOK_ENDPOINT="+addr, "WXPAYD_BENCH_WEBHOOK_DELAY="+delay.String())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return "http://" + addr + "/hooks"
		}
		if i == 500 {
			b.Fatalf("the endpoint did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBenchEndpoint is not a test: it is BenchmarkDeliver's endpoint, run
// in a child process (WXPAYD_BENCH_WEBHOOK_ENDPOINT=addr,
// WXPAYD_BENCH_WEBHOOK_DELAY=duration). It answers 204 until killed.
func TestBenchEndpoint(t *testing.T) {
	addr := os.Getenv("WXPAYD_BENCH_WEBHOOK_ENDPOINT")
	if addr == "" {
		t.Skip("BenchmarkDeliver runs this as its endpoint")
	}
	delay, _ := time.ParseDuration(os.Getenv("WXPAYD_BENCH_WEBHOOK_DELAY"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if delay > 0 {
			time.Sleep(delay)
		}
		ctx.Response.Header.Set("X-Len", strconv.Itoa(len(ctx.PostBody())))
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}}
	_ = srv.Serve(ln)
}
