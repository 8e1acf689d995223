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
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/embedded"
	"github.com/wxpayd/wxpayd/sink/relay"
)

// events is the event pipeline inside wxpayd: the outbox relay to Kafka
// (an embedded Kafka-protocol broker when none is configured) and, when
// WXPAYD_CLICKHOUSE_ADDR is set, the ClickHouse sink.
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
	if e.relay, err = relay.New(relay.Config{Brokers: brokers, Topic: v["WXPAYD_KAFKA_TOPIC"], Logger: log, Registerer: reg}, st); err != nil {
		e.stopBroker()
		return nil, configError{fmt.Errorf("WXPAYD_KAFKA_BROKERS: %w", err)}
	}
	if addr := v["WXPAYD_CLICKHOUSE_ADDR"]; addr != "" {
		cfg := sink.Config{Brokers: brokers, ClickHouse: clickhouse.Config{Addr: addr}, Logger: log, Registerer: reg}
		cfg.Consumer.Topic = v["WXPAYD_KAFKA_TOPIC"]
		e.sink = &cfg
	}
	return e, nil
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
