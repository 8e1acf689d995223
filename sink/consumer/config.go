package consumer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/sink/internal/defaults"
)

// Defaults of Config. Those the sink's packages share come from one place
// (sink/internal/defaults); BatchSize and FlushInterval are also
// ClickHouse's.
const (
	DefaultTopic             = defaults.Topic
	DefaultGroupID           = "wxpayd-sink"
	DefaultBatchSize         = defaults.BatchSize
	DefaultFlushInterval     = defaults.FlushInterval
	DefaultPartitions        = defaults.Partitions
	DefaultReplicationFactor = defaults.ReplicationFactor
	DefaultRetryBackoff      = defaults.RetryBackoff
	DefaultMaxRetryBackoff   = defaults.MaxRetryBackoff
	DefaultShutdownTimeout   = 10 * time.Second
)

// DLQReasonHeader is the header of a dead-lettered message that says why.
// The message keeps its key and value; the source topic, partition and
// offset are in the headers "wxpayd-dlq-topic", "wxpayd-dlq-partition" and
// "wxpayd-dlq-offset".
const DLQReasonHeader = "wxpayd-dlq-reason"

// Config configures a Consumer. The zero value, with Brokers set, is the
// default.
type Config struct {
	// Brokers are the bootstrap brokers (host:port). Required.
	Brokers []string
	// Topic is the order-event topic (default "wxpayd.order-events").
	Topic string
	// DLQTopic receives messages that cannot be decoded (default Topic+".dlq").
	DLQTopic string
	// GroupID is the consumer group (default "wxpayd-sink").
	GroupID string
	// BatchSize is the most events in one Sink.Write (default 50000).
	BatchSize int
	// FlushInterval is the longest a partial batch waits (default 1 s).
	FlushInterval time.Duration
	// Partitions and ReplicationFactor are used when the topics do not exist
	// yet (defaults 6 and 1).
	Partitions, ReplicationFactor int
	// RetryBackoff and MaxRetryBackoff bound the back-off between failed
	// writes, commits and DLQ publishes (defaults 100 ms and 5 s; a
	// MaxRetryBackoff below RetryBackoff becomes the larger of RetryBackoff
	// and 5 s). Each delay is jittered between half its bound and the bound.
	RetryBackoff, MaxRetryBackoff time.Duration
	// ShutdownTimeout bounds writing and committing the last batches after
	// Run's context ends (default 10 s).
	ShutdownTimeout time.Duration
	// Logger receives errors and state changes (default: slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, gets the consumer's metrics (wxpayd_sink_*).
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = c.Topic + ".dlq"
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	c.RetryBackoff, c.MaxRetryBackoff = defaults.BackoffBounds(c.RetryBackoff, c.MaxRetryBackoff)
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("%w: Brokers is required", ErrConfig)
	}
	c = c.withDefaults()
	if c.DLQTopic == c.Topic {
		return fmt.Errorf("%w: DLQTopic must differ from Topic", ErrConfig)
	}
	return nil
}
