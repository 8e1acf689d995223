package sink_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// The checked-in JSON Schema and docs/events.md describe exactly the fields
// of event.Event, and the schema's required fields and version match
// event.Decode's rules.
func TestEventSchemaAndDocMatchTheEventType(t *testing.T) {
	root := itest.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "actors", "event", "event.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	var fields []string
	typ := reflect.TypeFor[event.Event]()
	for i := range typ.NumField() {
		fields = append(fields, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
	}
	var props []string
	for k := range schema.Properties {
		props = append(props, k)
	}
	sort.Strings(fields)
	sort.Strings(props)
	if !reflect.DeepEqual(fields, props) {
		t.Fatalf("schema properties %v\nevent.Event fields %v", props, fields)
	}
	var v struct {
		Const int `json:"const"`
	}
	if err := json.Unmarshal(schema.Properties["v"], &v); err != nil || v.Const != event.Version {
		t.Fatalf("schema v const %d, event.Version %d", v.Const, event.Version)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if !strings.Contains(string(doc), "| `"+f+"` |") {
			t.Errorf("docs/events.md has no row for field %s", f)
		}
	}
	for _, typ := range []string{event.OrderCreated, event.OrderPrepaid, event.OrderPrepayFailed, event.OrderPaid,
		event.OrderClosed, event.OrderRefundRequested, event.OrderRefundFailed, event.OrderRefunded,
		event.NotifyDuplicate, event.NotifyRejected, event.NotifyMismatch} {
		if !strings.Contains(string(doc), "| `"+typ+"` |") {
			t.Errorf("docs/events.md has no row for type %s", typ)
		}
	}
	// Every field the schema requires is present in an encoded minimal event.
	e := event.Event{EventID: "x:1", Type: event.OrderCreated, TimeMs: 1}
	enc := event.Encode(&e)
	var m map[string]any
	_ = json.Unmarshal(enc, &m)
	for _, r := range schema.Required {
		if _, ok := m[r]; !ok {
			t.Errorf("required %q is omitted by event.Encode for %s", r, enc)
		}
	}
}
