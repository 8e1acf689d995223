package clickhouse

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/wxpayd/wxpayd/sink/internal/defaults"
)

// Defaults of Config. BatchSize and FlushInterval are shared with the
// sink's consumer and come from one place (sink/internal/defaults).
const (
	DefaultDatabase      = "wxpayd"
	DefaultBatchSize     = defaults.BatchSize
	DefaultFlushInterval = defaults.FlushInterval
	DefaultParallel      = 2
	DefaultReadTimeout   = 30 * time.Second
	DefaultDialTimeout   = 5 * time.Second
)

// Config configures a Writer. The zero value, with Addr set, is the default.
type Config struct {
	// Addr is host:port of ClickHouse's native protocol (tcp_port, 9000 by
	// default; 19000 for deploy/local). Required.
	Addr string
	// Database is created if missing and holds every table (default "wxpayd").
	Database string
	// Username and Password authenticate (default: user "default", no password).
	Username, Password string
	// BatchSize is the most rows one INSERT carries; a larger Write is split
	// (default 50000). The sink's consumer also uses it as its batch size.
	BatchSize int
	// FlushInterval is how long the sink's consumer holds a partial batch
	// before writing it (default 1 s). The Writer itself never waits.
	FlushInterval time.Duration
	// Parallel is how many INSERTs one Write runs at once when it has more
	// than 8192 events (default 2: this machine's cores).
	Parallel int
	// ReadTimeout bounds each read from the server (default 30 s).
	ReadTimeout time.Duration
	// DialTimeout bounds connecting (default 5 s).
	DialTimeout time.Duration
}

var dbName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("clickhouse: Addr is required"))
	}
	if !dbName.MatchString(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse: Database %q must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", c.Database))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("clickhouse: BatchSize %d is negative", c.BatchSize))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config { return c.withDefaults() }
