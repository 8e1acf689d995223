package clickhouse

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one schema step: migrations/NNN_name.sql.
type Migration struct {
	Version uint32
	Name    string
	SQL     string // the file as written, "{db}" not yet replaced
}

// Statements returns the migration's statements for database db, comments
// removed. Statements are separated by a ';' at the end of a line.
func (m Migration) Statements(db string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(m.SQL, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			out = append(out, strings.ReplaceAll(s, "{db}", db))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, strings.ReplaceAll(s, "{db}", db))
	}
	return out
}

var migrationName = regexp.MustCompile(`^(\d{3})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMigration, err)
	}
	var ms []Migration
	seen := map[uint32]string{}
	for _, e := range ents {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("%w: file name %q is not NNN_name.sql", ErrMigration, e.Name())
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		if prev, dup := seen[uint32(v)]; dup {
			return nil, fmt.Errorf("%w: %s and %s share version %d", ErrMigration, prev, e.Name(), v)
		}
		seen[uint32(v)] = e.Name()
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMigration, err)
		}
		ms = append(ms, Migration{Version: uint32(v), Name: m[2], SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Migrate creates database db if needed and applies, in order, every
// embedded migration not yet recorded in db.schema_migrations, recording
// each after its statements succeed. It returns the migrations it applied.
//
// Every statement is idempotent, so two sinks starting at once may both
// apply a step; the second changes nothing. CREATE takes IF NOT EXISTS;
// ALTER TABLE ... ADD COLUMN cannot (18.16 has no IF NOT EXISTS there), so
// a column that exists already counts as added (addedAlready).
func Migrate(ctx context.Context, conn driver.Conn, db string) ([]Migration, error) {
	if !dbName.MatchString(db) {
		return nil, fmt.Errorf("%w: bad database name %q", ErrMigration, db)
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	boot := []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime) " +
			"ENGINE = MergeTree ORDER BY version",
	}
	for _, q := range boot {
		if err := conn.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMigration, q, err)
		}
	}
	applied, err := AppliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		for _, q := range m.Statements(db) {
			if err := conn.Exec(ctx, q); err != nil && !addedAlready(q, err) {
				return done, fmt.Errorf("%w: %03d_%s: %w", ErrMigration, m.Version, m.Name, err)
			}
		}
		// INSERT ... SELECT through Exec (an Exec'd INSERT ... VALUES hangs
		// on the native protocol); the name is [a-z0-9_] by the file pattern.
		rec := fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, applied_at) SELECT %d, '%s', now()",
			db, m.Version, m.Name)
		if err := conn.Exec(ctx, rec); err != nil {
			return done, fmt.Errorf("%w: record %03d_%s: %w", ErrMigration, m.Version, m.Name, err)
		}
		done = append(done, m)
	}
	return done, nil
}

// addedAlready reports whether err is ClickHouse refusing an ADD COLUMN
// statement (one column per statement) because the column exists:
// ILLEGAL_COLUMN, "column with this name already exists", on 18.16 and
// current versions alike.
func addedAlready(q string, err error) bool {
	var ex *proto.Exception
	return strings.Contains(strings.ToUpper(q), " ADD COLUMN ") && errors.As(err, &ex) && ex.Code == 44 &&
		strings.Contains(ex.Message, "already exists")
}

// AppliedVersions returns the versions recorded in db.schema_migrations.
func AppliedVersions(ctx context.Context, conn driver.Conn, db string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("%w: read schema_migrations: %w", ErrMigration, err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("%w: read schema_migrations: %w", ErrMigration, err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read schema_migrations: %w", ErrMigration, err)
	}
	return applied, nil
}
