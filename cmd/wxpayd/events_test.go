package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink"
)

// setSinkEnv sets every variable sink.ConfigFromEnv reads to a value that
// is not its default.
func setSinkEnv(t *testing.T) {
	t.Setenv(sink.EnvKafkaBrokers, "kafka-from-env:9092")
	t.Setenv(sink.EnvKafkaTopic, "topic-from-env")
	t.Setenv(sink.EnvGroupID, "group-from-env")
	t.Setenv(sink.EnvClickHouseAddr, "clickhouse-from-env:9000")
	t.Setenv(sink.EnvClickHouseDatabase, "shop_analytics")
	t.Setenv(sink.EnvClickHouseUser, "sink_writer")
	t.Setenv(sink.EnvClickHousePassword, "pa55-from-env")
	t.Setenv(sink.EnvBatchSize, "1234")
	t.Setenv(sink.EnvFlushInterval, "250ms")
}

// TestInProcessSinkReadsEverySinkSetting: the sink inside wxpayd takes the
// standalone sink's settings (user, password, database, group, batch), with
// wxpayd's own brokers, topic and address.
func TestInProcessSinkReadsEverySinkSetting(t *testing.T) {
	setSinkEnv(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	v := values{"WXPAYD_CLICKHOUSE_ADDR": "clickhouse-flag:9000", "WXPAYD_KAFKA_TOPIC": "orders-flag"}

	cfg, err := sinkConfig(v, []string{"127.0.0.1:19092"}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ch := cfg.ClickHouse
	if ch.Username != "sink_writer" || ch.Password != "pa55-from-env" || ch.Database != "shop_analytics" ||
		ch.BatchSize != 1234 || ch.FlushInterval != 250*time.Millisecond {
		t.Errorf("ClickHouse settings not applied: user %q, database %q, batch %d, flush %v",
			ch.Username, ch.Database, ch.BatchSize, ch.FlushInterval)
	}
	if cfg.Consumer.GroupID != "group-from-env" {
		t.Errorf("group %q", cfg.Consumer.GroupID)
	}
	// wxpayd's resolution wins where it has a setting of its own.
	if ch.Addr != "clickhouse-flag:9000" || cfg.Consumer.Topic != "orders-flag" ||
		strings.Join(cfg.Brokers, ",") != "127.0.0.1:19092" {
		t.Errorf("addr %q, topic %q, brokers %v", ch.Addr, cfg.Consumer.Topic, cfg.Brokers)
	}
	if cfg.Logger != log || cfg.Registerer != reg {
		t.Error("logger or registerer not passed")
	}

	t.Run("no ClickHouse address runs no sink", func(t *testing.T) {
		cfg, err := sinkConfig(values{}, []string{"127.0.0.1:19092"}, log, reg)
		if cfg != nil || err != nil {
			t.Fatalf("%+v, %v", cfg, err)
		}
	})
	t.Run("a malformed sink setting stops start-up, named, without the password", func(t *testing.T) {
		t.Setenv(sink.EnvBatchSize, "lots")
		_, err := sinkConfig(v, []string{"127.0.0.1:19092"}, log, reg)
		if err == nil || !strings.Contains(err.Error(), sink.EnvBatchSize) || strings.Contains(err.Error(), "pa55-from-env") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an invalid database name stops start-up", func(t *testing.T) {
		t.Setenv(sink.EnvClickHouseDatabase, "shop; DROP TABLE x")
		if _, err := sinkConfig(v, []string{"127.0.0.1:19092"}, log, reg); err == nil {
			t.Fatal("accepted")
		}
	})
}

// TestNewEventsBuildsTheSinkFromTheSinkSettings runs the wiring itself:
// newEvents with a configured broker (nothing is dialled before Run).
func TestNewEventsBuildsTheSinkFromTheSinkSettings(t *testing.T) {
	setSinkEnv(t)
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	v := values{"WXPAYD_KAFKA_BROKERS": "127.0.0.1:19092", "WXPAYD_KAFKA_TOPIC": "orders",
		"WXPAYD_CLICKHOUSE_ADDR": "127.0.0.1:19000"}

	e, err := newEvents(v, st, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.relay.Close()
	if e.sink == nil {
		t.Fatal("no sink configured")
	}
	ch := e.sink.ClickHouse
	if ch.Username != "sink_writer" || ch.Password != "pa55-from-env" || ch.Database != "shop_analytics" || ch.BatchSize != 1234 ||
		e.sink.Consumer.GroupID != "group-from-env" || ch.Addr != "127.0.0.1:19000" || e.sink.Consumer.Topic != "orders" {
		t.Fatalf("sink settings not applied: %+v", ch)
	}

	t.Setenv(sink.EnvFlushInterval, "soon")
	_, err = newEvents(v, st, prometheus.NewRegistry(), log)
	var ce configError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), sink.EnvFlushInterval) {
		t.Fatalf("a bad sink setting: %v", err)
	}
}

// TestSinkPasswordFromAFile: the ClickHouse password can come from a file,
// like every other secret; both forms at once are refused; an unreadable
// file is named, never its content.
func TestSinkPasswordFromAFile(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	v := values{"WXPAYD_CLICKHOUSE_ADDR": "clickhouse:9000"}
	f := t.TempDir() + "/ch-password"
	if err := os.WriteFile(f, []byte("s3cret-in-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(sink.EnvClickHousePasswordFile, f)
	cfg, err := sinkConfig(v, []string{"127.0.0.1:19092"}, log, reg)
	if err != nil || cfg.ClickHouse.Password != "s3cret-in-file" {
		t.Fatalf("password %q, %v", cfg.ClickHouse.Password, err)
	}
	t.Setenv(sink.EnvClickHousePassword, "also-in-env")
	if _, err := sinkConfig(v, []string{"127.0.0.1:19092"}, log, reg); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("both forms: %v", err)
	}
	t.Setenv(sink.EnvClickHousePassword, "")
	t.Setenv(sink.EnvClickHousePasswordFile, f+".missing")
	if _, err := sinkConfig(v, []string{"127.0.0.1:19092"}, log, reg); err == nil || !strings.Contains(err.Error(), sink.EnvClickHousePasswordFile) {
		t.Fatalf("missing file: %v", err)
	}
}
