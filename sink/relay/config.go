package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/sink/internal/defaults"
)

// Defaults of Config. Those the sink's packages share come from one place
// (sink/internal/defaults).
const (
	DefaultTopic             = defaults.Topic
	DefaultBatchSize         = 1000
	DefaultBatchTimeout      = 5 * time.Millisecond
	DefaultPartitions        = defaults.Partitions
	DefaultReplicationFactor = defaults.ReplicationFactor
	DefaultMaxAttempts       = 3
	DefaultRetryBackoff      = defaults.RetryBackoff
	DefaultMaxRetryBackoff   = defaults.MaxRetryBackoff
	DefaultPollInterval      = 100 * time.Millisecond
)

// ErrConfig: the configuration is invalid.
var ErrConfig = errors.New("relay: invalid config")

// Config configures a Relay. The zero value, with Brokers set, is the
// default.
type Config struct {
	// Brokers are the bootstrap brokers (host:port). Required.
	Brokers []string
	// Topic is the order-event topic (default "wxpayd.order-events").
	Topic string
	// BatchSize is the most outbox entries read and published at once
	// (default 1000).
	BatchSize int
	// BatchTimeout is how long the Kafka writer waits to fill a partition's
	// batch (default 5 ms; kafka-go's own default of 1 s would delay every
	// small publish by a second).
	BatchTimeout time.Duration
	// Compression is the codec (default lz4; zero means lz4, so use
	// NoCompression to turn it off).
	Compression kafka.Compression
	// NoCompression sends batches uncompressed.
	NoCompression bool
	// Partitions and ReplicationFactor are used when the relay creates the
	// topic (defaults 6 and 1).
	Partitions, ReplicationFactor int
	// MaxAttempts is how many times the Kafka writer tries one publish
	// before the relay backs off (default 3).
	MaxAttempts int
	// RetryBackoff and MaxRetryBackoff bound the relay's back-off between
	// failed publishes (defaults 100 ms and 5 s; a MaxRetryBackoff below
	// RetryBackoff becomes the larger of RetryBackoff and 5 s). Each delay
	// is jittered between half its bound and the bound.
	RetryBackoff, MaxRetryBackoff time.Duration
	// PollInterval is how often the relay looks at the outbox when no
	// commit woke it (default 100 ms).
	PollInterval time.Duration
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, gets the relay's metrics.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.Compression == 0 && !c.NoCompression {
		c.Compression = kafka.Lz4
	}
	if c.NoCompression {
		c.Compression = 0
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	c.RetryBackoff, c.MaxRetryBackoff = defaults.BackoffBounds(c.RetryBackoff, c.MaxRetryBackoff)
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
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
	if c.BatchSize < 0 {
		return fmt.Errorf("%w: BatchSize %d is negative", ErrConfig, c.BatchSize)
	}
	return nil
}
