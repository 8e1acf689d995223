// Package jsonw appends JSON values to byte slices without reflection, for
// the records written on every order transition. Its output is
// byte-for-byte what encoding/json's Marshal produces for the same values
// (HTML-safe escaping, U+2028/U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD), so readers that use encoding/json see no difference; the tests
// hold it to that.
package jsonw

import (
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// safe reports the ASCII bytes encoding/json writes unescaped with HTML
// escaping on: printable, and none of " \ < > &.
var safe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = true
	}
	for _, b := range `"\<>&` {
		t[b] = false
	}
	return t
}()

// String appends s as a JSON string.
func String(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Object builds a JSON object member by member. The zero value is not
// ready: start with Open.
type Object struct {
	B     []byte
	first bool
}

// Open starts an object on dst.
func Open(dst []byte) Object { return Object{B: append(dst, '{'), first: true} }

// Close ends the object and returns the bytes.
func (o *Object) Close() []byte { return append(o.B, '}') }

// key writes the member's name; names are fixed Go literals that need no
// escaping.
func (o *Object) key(name string) {
	if !o.first {
		o.B = append(o.B, ',')
	}
	o.first = false
	o.B = append(o.B, '"')
	o.B = append(o.B, name...)
	o.B = append(o.B, '"', ':')
}

// Str writes a string member.
func (o *Object) Str(name, v string) {
	o.key(name)
	o.B = String(o.B, v)
}

// StrOmit writes a string member unless v is empty (`json:",omitempty"`).
func (o *Object) StrOmit(name, v string) {
	if v != "" {
		o.Str(name, v)
	}
}

// Int writes an integer member.
func (o *Object) Int(name string, v int64) {
	o.key(name)
	o.B = strconv.AppendInt(o.B, v, 10)
}

// IntOmit writes an integer member unless v is zero.
func (o *Object) IntOmit(name string, v int64) {
	if v != 0 {
		o.Int(name, v)
	}
}

// Uint writes an unsigned integer member.
func (o *Object) Uint(name string, v uint64) {
	o.key(name)
	o.B = strconv.AppendUint(o.B, v, 10)
}

// BoolOmit writes a bool member when it is true.
func (o *Object) BoolOmit(name string, v bool) {
	if v {
		o.key(name)
		o.B = append(o.B, "true"...)
	}
}

// StrsOmit writes a string array member unless it is empty.
func (o *Object) StrsOmit(name string, v []string) {
	if len(v) == 0 {
		return
	}
	o.key(name)
	o.B = append(o.B, '[')
	for i, s := range v {
		if i > 0 {
			o.B = append(o.B, ',')
		}
		o.B = String(o.B, s)
	}
	o.B = append(o.B, ']')
}

// Raw writes a member whose value the caller has already encoded, by
// appending it with fn.
func (o *Object) Raw(name string, fn func(dst []byte) []byte) {
	o.key(name)
	o.B = fn(o.B)
}
