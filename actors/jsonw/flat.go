package jsonw

import (
	"math"
	"unicode/utf8"
)

// Kind is the kind of a member's value in ScanFlat.
type Kind uint8

// Value kinds ScanFlat accepts.
const (
	KindString  Kind = iota + 1 // no escapes, valid UTF-8
	KindInt                     // an integer that fits int64 or uint64
	KindBool                    // true or false
	KindStrings                 // an array of such strings
)

// Value is one member's value, aliasing the scanned bytes.
type Value struct {
	Kind Kind
	raw  []byte // the string's contents, the number, or the array's elements
	neg  bool
	u    uint64
	b    bool
}

// Str is a KindString value's contents.
func (v Value) Str() string { return string(v.raw) }

// Int64 is a KindInt value as an int64; ok is false if it does not fit.
func (v Value) Int64() (int64, bool) {
	if v.neg {
		if v.u > 1<<63 {
			return 0, false
		}
		return -int64(v.u), true
	}
	if v.u > math.MaxInt64 {
		return 0, false
	}
	return int64(v.u), true
}

// Uint64 is a KindInt value as a uint64; ok is false if it is negative.
func (v Value) Uint64() (uint64, bool) { return v.u, !v.neg || v.u == 0 }

// Bool is a KindBool value.
func (v Value) Bool() bool { return v.b }

// Strings is a KindStrings value's elements (empty, not nil, for [], as
// encoding/json decodes it).
func (v Value) Strings() []string {
	out := []string{}
	for i := 0; i < len(v.raw); {
		j := i + 1
		for v.raw[j] != '"' {
			j++
		}
		out = append(out, string(v.raw[i+1:j]))
		i = j + 2 // past '"' and ','
	}
	return out
}

// ScanFlat calls fn for each member of the JSON object b, for the narrow
// form this package writes: no whitespace, and values that are strings
// without escapes, integers, booleans or arrays of such strings. It
// reports false as soon as b strays from that form (or fn returns false),
// and the caller then decodes b with encoding/json, which gives every
// other input its exact meaning. Within the form, ScanFlat reads values as
// encoding/json would.
//
// key aliases b: switch on string(key), which does not allocate.
func ScanFlat(b []byte, fn func(key []byte, v Value) bool) bool {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	i, end := 1, len(b)-1
	if i == end {
		return true
	}
	for {
		key, next, ok := plainRaw(b, i, end)
		if !ok || next >= end || b[next] != ':' {
			return false
		}
		var v Value
		if i, ok = value(b, next+1, end, &v); !ok || !fn(key, v) {
			return false
		}
		if i == end {
			return true
		}
		if b[i] != ',' {
			return false
		}
		i++
	}
}

// plainRaw reads the string starting at b[i]: its contents and the index
// after its closing quote.
func plainRaw(b []byte, i, end int) ([]byte, int, bool) {
	if i >= end || b[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < end; j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

func value(b []byte, i, end int, v *Value) (int, bool) {
	if i >= end {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		raw, next, ok := plainRaw(b, i, end)
		v.Kind, v.raw = KindString, raw
		return next, ok
	case c == '-' || c >= '0' && c <= '9':
		return integer(b, i, end, v)
	case c == 't' && end-i >= 4 && string(b[i:i+4]) == "true":
		v.Kind, v.b = KindBool, true
		return i + 4, true
	case c == 'f' && end-i >= 5 && string(b[i:i+5]) == "false":
		v.Kind = KindBool
		return i + 5, true
	case c == '[':
		start := i + 1
		j := start
		if j < end && b[j] == ']' {
			v.Kind, v.raw = KindStrings, b[start:j]
			return j + 1, true
		}
		for {
			_, next, ok := plainRaw(b, j, end)
			if !ok || next >= end {
				return 0, false
			}
			if b[next] == ']' {
				v.Kind, v.raw = KindStrings, b[start:next]
				return next + 1, true
			}
			if b[next] != ',' {
				return 0, false
			}
			j = next + 1
		}
	}
	return 0, false
}

// integer reads a JSON integer (no fraction or exponent: those fall back).
func integer(b []byte, i, end int, v *Value) (int, bool) {
	if b[i] == '-' {
		v.neg = true
		i++
	}
	start := i
	var u uint64
	for ; i < end && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	n := i - start
	if n == 0 || n > 1 && b[start] == '0' {
		return 0, false
	}
	if i < end && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, false
	}
	v.Kind, v.u = KindInt, u
	return i, true
}
