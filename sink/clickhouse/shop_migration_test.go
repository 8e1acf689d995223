package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// TestMigrateAfterAnotherSinkAddedTheColumns: a sink that lost the race to
// another (which ran every statement but had not recorded them yet) still
// migrates: ADD COLUMN of a column that exists counts as done, on 18.16
// (which has no ADD COLUMN IF NOT EXISTS) as on current ClickHouse.
func TestMigrateAfterAnotherSinkAddedTheColumns(t *testing.T) {
	cfg := clickhouse.Config{Addr: itest.ClickHouse(t), Database: itest.Name("wxpayd_race")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { DropDatabase(t, cfg) })
	conn, err := clickhouse.Dial(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ms, err := clickhouse.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE "+cfg.Database); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms { // the other sink's work, unrecorded
		for _, q := range m.Statements(cfg.Database) {
			if err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%03d: %v", m.Version, err)
			}
		}
	}
	done, err := clickhouse.Migrate(ctx, conn, cfg.Database)
	if err != nil || len(done) != len(ms) {
		t.Fatalf("Migrate applied %d of %d: %v", len(done), len(ms), err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = '"+cfg.Database+
		"' AND table = 'events' AND name IN ('shop_order_id', 'attach')").Scan(&n); err != nil || n != 2 {
		t.Fatalf("events has %d of the shop columns (err %v)", n, err)
	}
}
