package ingress

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/webhook"
)

// Webhook modes of BenchmarkNotifyAck.
const (
	hooksOff     = ""        // no subscription: nothing queued
	hooksQueued  = "queued"  // queued with each PAID write; delivered after the timed window
	hooksDeliver = "deliver" // queued, and delivered during the timed window
)

// benchHooks is a webhook deliverer posting st's queue to an endpoint in a
// child process (the shop's endpoint is not wxpayd's CPU: cpu-us/ack
// counts this process only, though the child shares the machine's cores).
type benchHooks struct {
	b    *testing.B
	st   *store.Store
	d    *webhook.Deliverer
	errc chan error
	peer *exec.Cmd
	ran  bool
}

// newBenchHooks starts the endpoint and builds the deliverer; run starts
// delivering.
func newBenchHooks(b *testing.B, st *store.Store) *benchHooks {
	h := &benchHooks{b: b, st: st, errc: make(chan error, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	h.peer = exec.Command(os.Args[0], "-test.run=^TestBenchWebhookEndpoint$", "-test.count=1")
	h.peer.Env = append(os.Environ(), "WXPAYD_BENCH_WEBHOOK_ENDPOINT="+addr)
	h.peer.Stdout, h.peer.Stderr = os.Stderr, os.Stderr
	if err := h.peer.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.stop)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			break
		}
		if i == 500 {
			b.Fatalf("the webhook endpoint did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h.d, err = webhook.New(webhook.Config{URL: "http://" + addr + "/hooks", Secret: []byte("bench-webhook-secret-0123456789"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st); err != nil {
		b.Fatal(err)
	}
	return h
}

func (h *benchHooks) run() {
	h.ran = true
	go func() { h.errc <- h.d.Run(context.Background()) }()
}

// report adds what the deliverer did during the timed window, then
// delivers (untimed) everything the window queued.
func (h *benchHooks) report(acks int, took time.Duration) {
	b := h.b
	b.ReportMetric(float64(h.d.Stats().Delivered)/took.Seconds(), "hooks/s")
	b.ReportMetric(float64(h.st.WebhookBacklog()), "hook-backlog")
	if !h.ran {
		h.run()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for h.d.Stats().Delivered < int64(acks) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.d.Stats().Delivered; got < int64(acks) {
		b.Errorf("%d of %d webhooks delivered", got, acks)
	}
}

func (h *benchHooks) stop() {
	if h.d != nil && h.ran {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.d.Close(ctx)
		if err := <-h.errc; err != nil {
			h.b.Error(err)
		}
	}
	_ = h.peer.Process.Kill()
	_ = h.peer.Wait()
}

// TestBenchWebhookEndpoint is not a test: it is the shop's endpoint of
// BenchmarkNotifyAck's webhook variants, run by the benchmark in a child
// process (WXPAYD_BENCH_WEBHOOK_ENDPOINT=addr). It answers 204 at once
// until killed.
func TestBenchWebhookEndpoint(t *testing.T) {
	addr := os.Getenv("WXPAYD_BENCH_WEBHOOK_ENDPOINT")
	if addr == "" {
		t.Skip("BenchmarkNotifyAck runs this as its webhook endpoint")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(fasthttp.StatusNoContent) }}
	_ = srv.Serve(ln)
}
