// Command wxpaysink consumes wxpayd's order events from Kafka into
// ClickHouse; see package github.com/wxpayd/wxpayd/sink.
//
//	wxpaysink [--brokers host:port,...] [--clickhouse host:port] [flags]
//
// Every flag may also be given in the environment (WXPAYD_KAFKA_BROKERS,
// WXPAYD_CLICKHOUSE_ADDR, WXPAYD_CLICKHOUSE_DATABASE, WXPAYD_KAFKA_TOPIC,
// WXPAYD_SINK_GROUP, WXPAYD_SINK_BATCH_SIZE, WXPAYD_SINK_FLUSH_INTERVAL,
// WXPAYD_SINK_METRICS_ADDR, WXPAYD_CLICKHOUSE_USER, WXPAYD_CLICKHOUSE_PASSWORD);
// a flag wins over the environment. SIGTERM or SIGINT stops it gracefully:
// the batches in hand are written and committed first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxpayd/wxpayd/sink"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1 // the sink failed while running (e.g. a migration)
	exitUsage   = 2 // bad command line
	exitConfig  = 3 // invalid configuration
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	cfg, err := sink.ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(stderr, "wxpaysink:", err)
		return exitConfig
	}
	fs := flag.NewFlagSet("wxpaysink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", os.Getenv(sink.EnvKafkaBrokers), "comma-separated Kafka brokers (required)")
	fs.StringVar(&cfg.Consumer.Topic, "topic", cfg.Consumer.Topic, "order-event topic (default wxpayd.order-events)")
	fs.StringVar(&cfg.Consumer.GroupID, "group", cfg.Consumer.GroupID, "consumer group (default wxpayd-sink)")
	fs.StringVar(&cfg.ClickHouse.Addr, "clickhouse", cfg.ClickHouse.Addr, "ClickHouse native-protocol host:port (required)")
	fs.StringVar(&cfg.ClickHouse.Database, "database", cfg.ClickHouse.Database, "ClickHouse database (default wxpayd)")
	fs.IntVar(&cfg.ClickHouse.BatchSize, "batch-size", cfg.ClickHouse.BatchSize, "events per ClickHouse batch (default 50000)")
	fs.DurationVar(&cfg.ClickHouse.FlushInterval, "flush-interval", cfg.ClickHouse.FlushInterval, "longest a partial batch waits (default 1s)")
	metricsAddr := fs.String("metrics-addr", os.Getenv("WXPAYD_SINK_METRICS_ADDR"), "serve /metrics here (empty: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "wxpaysink: no arguments are taken")
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "wxpaysink: --log-level:", err)
		return exitUsage
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Brokers = sink.SplitList(*brokers)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "wxpaysink:", err)
		return exitConfig
	}

	// The sink allocates per message at 10^5 events/s and holds at most
	// three batches: trade memory for less GC unless GOGC is set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var srv *http.Server
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			fmt.Fprintln(stderr, "wxpaysink: metrics:", err)
			return exitConfig
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
	}

	// Run until SIGTERM/SIGINT; Run then writes and commits the batches in
	// hand before it returns.
	err = sink.Run(ctx, cfg)

	// Shutdown order: the sink has stopped consuming and flushed; then the
	// metrics endpoint closes.
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		cfg.Logger.Error("sink failed", "err", err)
		return exitRuntime
	}
	return exitOK
}
