package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink"
	"github.com/wxpayd/wxpayd/sink/embedded"
	"github.com/wxpayd/wxpayd/sink/relay"
)

// events is the event pipeline inside wxpayd: the outbox relay to Kafka
// (an embedded Kafka-protocol broker when none is configured) and, when
// WXPAYD_CLICKHOUSE_ADDR is set, the ClickHouse sink, configured as the
// standalone wxpaysink is (see sinkConfig).
type events struct {
	log         *slog.Logger
	st          *store.Store
	relay       *relay.Relay
	sink        *sink.Config
	closeBroker func()
}

func newEvents(v values, st *store.Store, reg prometheus.Registerer, log *slog.Logger) (*events, error) {
	e := &events{log: log, st: st}
	brokers := v.list("WXPAYD_KAFKA_BROKERS")
	if len(brokers) == 0 {
		addrs, closeFn, err := embedded.Start(filepath.Join(v["WXPAYD_DATA_DIR"], "kafka"))
		if err != nil {
			return nil, fmt.Errorf("embedded kafka: %w", err)
		}
		brokers, e.closeBroker = addrs, closeFn
		log.Info("embedded kafka broker", "addrs", addrs)
	}
	var err error
	if e.sink, err = sinkConfig(v, brokers, log, reg); err != nil {
		e.stopBroker()
		return nil, configError{err}
	}
	if e.relay, err = relay.New(relay.Config{Brokers: brokers, Topic: v["WXPAYD_KAFKA_TOPIC"], Logger: log, Registerer: reg}, st); err != nil {
		e.stopBroker()
		return nil, configError{fmt.Errorf("WXPAYD_KAFKA_BROKERS: %w", err)}
	}
	return e, nil
}

// sinkConfig is the in-process sink's configuration, nil when
// WXPAYD_CLICKHOUSE_ADDR is empty. It is read by sink.ConfigFromEnv, the
// reader of the standalone wxpaysink, so every sink setting applies here
// too: WXPAYD_CLICKHOUSE_DATABASE, WXPAYD_CLICKHOUSE_USER,
// WXPAYD_CLICKHOUSE_PASSWORD, WXPAYD_SINK_GROUP, WXPAYD_SINK_BATCH_SIZE and
// WXPAYD_SINK_FLUSH_INTERVAL, from the environment as wxpaysink reads
// them. The brokers are the ones this process publishes to (the embedded
// broker's when none is configured), and the topic and address are
// wxpayd's own settings, so a flag wins as for every wxpayd setting. A
// malformed value is an error naming the variable, never its value.
func sinkConfig(v values, brokers []string, log *slog.Logger, reg prometheus.Registerer) (*sink.Config, error) {
	addr := v["WXPAYD_CLICKHOUSE_ADDR"]
	if addr == "" {
		return nil, nil
	}
	cfg, err := sink.ConfigFromEnv()
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	cfg.Brokers = brokers
	cfg.ClickHouse.Addr = addr
	cfg.Consumer.Topic = v["WXPAYD_KAFKA_TOPIC"]
	cfg.Logger, cfg.Registerer = log, reg
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return &cfg, nil
}

func (e *events) start(spawn func(string, func(context.Context) error)) {
	spawn("relay", e.relay.Run)
	if e.sink != nil {
		cfg := *e.sink
		spawn("sink", func(ctx context.Context) error { return sink.Run(ctx, cfg) })
	}
}

// close flushes the outbox while Kafka answers (until ctx ends), then
// stops the relay. Unpublished events stay in the outbox for the next start.
func (e *events) close(ctx context.Context) error {
	for e.st.OutboxBacklog() > 0 {
		select {
		case <-ctx.Done():
			e.log.Warn("outbox not empty at shutdown; it is published at the next start", "backlog", e.st.OutboxBacklog())
			return e.relay.Close()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return e.relay.Close()
}

// stopBroker stops the embedded broker, after the sink has stopped.
func (e *events) stopBroker() {
	if e.closeBroker != nil {
		e.closeBroker()
		e.closeBroker = nil
	}
}
