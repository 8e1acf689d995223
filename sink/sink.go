package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/consumer"
	"github.com/wxpayd/wxpayd/sink/internal/defaults"
)

// Config is the whole sink: Kafka brokers, the consumer and ClickHouse.
type Config struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Consumer configures the Kafka side; its Brokers are set from Brokers,
	// and its BatchSize and FlushInterval default to ClickHouse's.
	Consumer consumer.Config
	// ClickHouse configures the writer; Addr is required.
	ClickHouse clickhouse.Config
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, gets the consumer's metrics.
	Registerer prometheus.Registerer
}

// Environment variables read by ConfigFromEnv.
const (
	EnvKafkaBrokers       = "WXPAYD_KAFKA_BROKERS"       // comma-separated host:port
	EnvKafkaTopic         = "WXPAYD_KAFKA_TOPIC"         // default wxpayd.order-events
	EnvGroupID            = "WXPAYD_SINK_GROUP"          // default wxpayd-sink
	EnvClickHouseAddr     = "WXPAYD_CLICKHOUSE_ADDR"     // host:port of the native protocol
	EnvClickHouseDatabase = "WXPAYD_CLICKHOUSE_DATABASE" // default wxpayd
	EnvClickHouseUser     = "WXPAYD_CLICKHOUSE_USER"     // default "default"
	EnvClickHousePassword = "WXPAYD_CLICKHOUSE_PASSWORD" // default empty; prefer the _FILE form
	// EnvClickHousePasswordFile names a file holding the password (one
	// line; a trailing newline is dropped), so the secret need not sit in
	// the environment. Setting both is an error.
	EnvClickHousePasswordFile = "WXPAYD_CLICKHOUSE_PASSWORD_FILE"
	EnvBatchSize              = "WXPAYD_SINK_BATCH_SIZE"     // default 50000
	EnvFlushInterval          = "WXPAYD_SINK_FLUSH_INTERVAL" // Go duration, default 1s
)

// ConfigFromEnv reads the WXPAYD_* variables above. Unset variables leave
// defaults; a malformed number or duration is an error.
func ConfigFromEnv() (Config, error) {
	var c Config
	if v := os.Getenv(EnvKafkaBrokers); v != "" {
		c.Brokers = SplitList(v)
	}
	c.Consumer.Topic = os.Getenv(EnvKafkaTopic)
	c.Consumer.GroupID = os.Getenv(EnvGroupID)
	c.ClickHouse.Addr = os.Getenv(EnvClickHouseAddr)
	c.ClickHouse.Database = os.Getenv(EnvClickHouseDatabase)
	c.ClickHouse.Username = os.Getenv(EnvClickHouseUser)
	c.ClickHouse.Password = os.Getenv(EnvClickHousePassword)
	var errs []error
	if f := os.Getenv(EnvClickHousePasswordFile); f != "" {
		b, err := os.ReadFile(f)
		switch {
		case c.ClickHouse.Password != "":
			errs = append(errs, fmt.Errorf("%s and %s are both set: keep the file", EnvClickHousePassword, EnvClickHousePasswordFile))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", EnvClickHousePasswordFile, err)) // names the file, never its content
		default:
			c.ClickHouse.Password = strings.TrimRight(string(b), "\r\n")
		}
	}
	if v := os.Getenv(EnvBatchSize); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive integer", EnvBatchSize, v))
		}
		c.ClickHouse.BatchSize = n
	}
	if v := os.Getenv(EnvFlushInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration such as 1s", EnvFlushInterval, v))
		}
		c.ClickHouse.FlushInterval = d
	}
	return c, errors.Join(errs...)
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c Config) resolve() (Config, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.ClickHouse = c.ClickHouse.WithDefaults()
	c.Consumer.Brokers = c.Brokers
	if c.Consumer.BatchSize == 0 {
		c.Consumer.BatchSize = c.ClickHouse.BatchSize
	}
	if c.Consumer.FlushInterval == 0 {
		c.Consumer.FlushInterval = c.ClickHouse.FlushInterval
	}
	if c.Consumer.Logger == nil {
		c.Consumer.Logger = c.Logger
	}
	if c.Consumer.Registerer == nil {
		c.Consumer.Registerer = c.Registerer
	}
	return c, errors.Join(c.Consumer.Validate(), c.ClickHouse.Validate())
}

// Validate checks the configuration.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// Run is the sink: it connects to ClickHouse and applies the migrations
// (retrying while ClickHouse is unreachable), then consumes Kafka into
// ClickHouse until ctx ends; it then writes and commits the batches in
// hand (within Consumer.ShutdownTimeout) and returns nil. It returns an
// error for an invalid configuration or a failing migration.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.resolve()
	if err != nil {
		return err
	}
	log := cfg.Logger.With("component", "sink")
	var w *clickhouse.Writer
	var bo defaults.Backoff // the shared 100 ms to 5 s, jittered
	for {
		w, err = clickhouse.Open(ctx, cfg.ClickHouse)
		if err == nil {
			break
		}
		if errors.Is(err, clickhouse.ErrMigration) && !isConnErr(err) {
			return err
		}
		log.Warn("ClickHouse not ready; retrying", "addr", cfg.ClickHouse.Addr, "err", err)
		if bo.Sleep(ctx) != nil {
			return nil
		}
	}
	defer w.Close()
	c, err := consumer.New(cfg.Consumer, w)
	if err != nil {
		return err
	}
	log.Info("sink running", "brokers", cfg.Brokers, "topic", cfg.Consumer.Topic, "clickhouse", cfg.ClickHouse.Addr,
		"database", cfg.ClickHouse.Database)
	err = c.Run(ctx)
	log.Info("sink stopped")
	return err
}

// isConnErr tells a migration that failed because the server went away
// (retry) from one the server refused (fatal).
func isConnErr(err error) bool {
	s := err.Error()
	for _, m := range []string{"connection refused", "broken pipe", "EOF", "i/o timeout", "connection reset", "dial tcp"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
