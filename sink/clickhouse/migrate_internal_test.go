package clickhouse

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

func TestAddedAlreadyOnlyForgivesAnExistingColumn(t *testing.T) {
	t.Parallel()
	exists := &proto.Exception{Code: 44, Message: "Cannot add column attach: column with this name already exists"}
	for _, tc := range []struct {
		name string
		q    string
		err  error
		want bool
	}{
		{"an ADD COLUMN of an existing column", "ALTER TABLE db.events ADD COLUMN attach String", exists, true},
		{"the same, wrapped", "alter table db.events add column attach String", fmt.Errorf("exec: %w", exists), true},
		{"another statement", "CREATE TABLE db.x (a String) ENGINE = Memory", exists, false},
		{"another code", "ALTER TABLE db.events ADD COLUMN attach String", &proto.Exception{Code: 62, Message: "already exists"}, false},
		{"another message", "ALTER TABLE db.events ADD COLUMN attach String", &proto.Exception{Code: 44, Message: "illegal type"}, false},
		{"not a server error", "ALTER TABLE db.events ADD COLUMN attach String", errors.New("already exists"), false},
	} {
		if got := addedAlready(tc.q, tc.err); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}
