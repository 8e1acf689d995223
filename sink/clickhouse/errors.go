package clickhouse

import "errors"

// ErrClosed: the Writer was closed.
var ErrClosed = errors.New("clickhouse: closed")

// ErrMigration: a migration file could not be parsed or applied.
var ErrMigration = errors.New("clickhouse: migration failed")
