package sim

import (
	"strconv"
	"time"

	"github.com/wxpayd/wxpayd/actors/jsonw"
)

// Hand-written JSON output for the answers on the hot paths (prepay, query,
// notifications): appending to one buffer costs no reflection and one
// allocation. Inputs were validated as UTF-8 when they were decoded.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, exactly as encoding/json
// writes it (invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte { return jsonw.String(b, s) }

// jsonObj appends "key":value pairs with the commas in between.
type jsonObj struct {
	b     []byte
	first bool
}

func newObj(b []byte) *jsonObj { return &jsonObj{b: append(b, '{'), first: true} }

func (o *jsonObj) key(k string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObj) str(k, v string) { o.key(k); o.b = appendJSONString(o.b, v) }
func (o *jsonObj) num(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}
func (o *jsonObj) raw(k, v string) { o.key(k); o.b = append(o.b, v...) }
func (o *jsonObj) obj(k string) *jsonObj {
	o.key(k)
	return &jsonObj{b: append(o.b, '{'), first: true}
}

// end closes a nested object and hands its buffer back to the parent.
func (o *jsonObj) end(parent *jsonObj) { parent.b = append(o.b, '}') }
func (o *jsonObj) done() []byte        { return append(o.b, '}') }

// beijing is UTC+8, the zone of every WeChat time.
var beijing = time.FixedZone("CST", 8*3600)

// rfc3339 formats t as WeChat does: 2018-06-08T10:34:56+08:00.
func rfc3339(t time.Time) string { return t.In(beijing).Format(time.RFC3339) }

// clampTime returns t limited to [lo, hi].
func clampTime(t, lo, hi time.Time) time.Time {
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}
