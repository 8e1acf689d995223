package wxpay

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A small, strict JSON reader for the documents WeChat sends. It validates
// the whole document (RFC 8259 grammar, UTF-8, nesting depth) and hands out
// string values as substrings of the source, so decoding a notification
// costs one allocation (the source string) unless a value has escapes.
// encoding/json allocates per field and reflects; on the notification path
// that was about a third of the SDKs' time.

const maxJSONDepth = 32

// jsonField is one member of an object: the key (unescaped) and the raw
// value span within the source.
type jsonField struct {
	key string
	raw string // the value as it appears in the source
}

// scanner walks a source string. Errors wrap ErrMalformed with an offset.
// A trusted scanner walks text the outer pass already validated (a nested
// object handed out as a member's raw value): it only finds boundaries.
type scanner struct {
	s       string
	pos     int
	trusted bool
}

func malformed(pos int, what string) error {
	return fmt.Errorf("%w: JSON %s at offset %d", ErrMalformed, what, pos)
}

func (sc *scanner) skipWS() {
	for sc.pos < len(sc.s) {
		switch sc.s[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// forEachMember validates that src is exactly one JSON object and calls fn
// for each member in order. Duplicate keys are the caller's concern.
func forEachMember(src string, fn func(f jsonField) error) error {
	if !utf8.ValidString(src) {
		return fmt.Errorf("%w: JSON is not UTF-8", ErrMalformed)
	}
	sc := scanner{s: src}
	sc.skipWS()
	if err := sc.object(0, fn); err != nil {
		return err
	}
	sc.skipWS()
	if sc.pos != len(sc.s) {
		return malformed(sc.pos, "trailing data")
	}
	return nil
}

// object parses an object at sc.pos; fn, if not nil, receives its members.
func (sc *scanner) object(depth int, fn func(f jsonField) error) error {
	if depth >= maxJSONDepth {
		return malformed(sc.pos, "nesting too deep")
	}
	if sc.pos >= len(sc.s) || sc.s[sc.pos] != '{' {
		return malformed(sc.pos, "expected object")
	}
	sc.pos++
	sc.skipWS()
	if sc.pos < len(sc.s) && sc.s[sc.pos] == '}' {
		sc.pos++
		return nil
	}
	for {
		sc.skipWS()
		kstart := sc.pos
		if err := sc.str(); err != nil {
			return err
		}
		keyRaw := sc.s[kstart:sc.pos]
		sc.skipWS()
		if sc.pos >= len(sc.s) || sc.s[sc.pos] != ':' {
			return malformed(sc.pos, "expected ':'")
		}
		sc.pos++
		sc.skipWS()
		vstart := sc.pos
		if err := sc.value(depth + 1); err != nil {
			return err
		}
		if fn != nil {
			key, err := unquote(keyRaw)
			if err != nil {
				return err
			}
			if err := fn(jsonField{key: key, raw: sc.s[vstart:sc.pos]}); err != nil {
				return err
			}
		}
		sc.skipWS()
		if sc.pos >= len(sc.s) {
			return malformed(sc.pos, "unterminated object")
		}
		switch sc.s[sc.pos] {
		case ',':
			sc.pos++
		case '}':
			sc.pos++
			return nil
		default:
			return malformed(sc.pos, "expected ',' or '}'")
		}
	}
}

func (sc *scanner) array(depth int) error {
	if depth >= maxJSONDepth {
		return malformed(sc.pos, "nesting too deep")
	}
	sc.pos++ // '['
	sc.skipWS()
	if sc.pos < len(sc.s) && sc.s[sc.pos] == ']' {
		sc.pos++
		return nil
	}
	for {
		sc.skipWS()
		if err := sc.value(depth + 1); err != nil {
			return err
		}
		sc.skipWS()
		if sc.pos >= len(sc.s) {
			return malformed(sc.pos, "unterminated array")
		}
		switch sc.s[sc.pos] {
		case ',':
			sc.pos++
		case ']':
			sc.pos++
			return nil
		default:
			return malformed(sc.pos, "expected ',' or ']'")
		}
	}
}

func (sc *scanner) value(depth int) error {
	if sc.pos >= len(sc.s) {
		return malformed(sc.pos, "expected value")
	}
	switch c := sc.s[sc.pos]; {
	case c == '{':
		return sc.object(depth, nil)
	case c == '[':
		return sc.array(depth)
	case c == '"':
		return sc.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return sc.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(sc.s)-sc.pos >= len(lit) && sc.s[sc.pos:sc.pos+len(lit)] == lit {
				sc.pos += len(lit)
				return nil
			}
		}
		return malformed(sc.pos, "unexpected character")
	}
}

// str consumes a string literal, validating escapes and control characters.
// Plain runs are skipped eight bytes at a time: a notification is mostly
// one long Base64 ciphertext.
func (sc *scanner) str() error {
	s, pos := sc.s, sc.pos
	if pos >= len(s) || s[pos] != '"' {
		return malformed(pos, "expected string")
	}
	pos++
	if sc.trusted {
		// Jump quote to quote; a quote preceded by an odd run of
		// backslashes is escaped.
		for {
			i := strings.IndexByte(s[pos:], '"')
			if i < 0 {
				return malformed(len(s), "unterminated string")
			}
			pos += i
			n := 0
			for j := pos - 1; j >= sc.pos && s[j] == '\\'; j-- {
				n++
			}
			pos++
			if n%2 == 0 {
				sc.pos = pos
				return nil
			}
		}
	}
	for {
		for pos+8 <= len(s) && plain8(load64(s, pos)) {
			pos += 8
		}
		if pos >= len(s) {
			sc.pos = pos
			return malformed(pos, "unterminated string")
		}
		switch c := s[pos]; {
		case c == '"':
			sc.pos = pos + 1
			return nil
		case c == '\\':
			if pos+1 >= len(s) {
				return malformed(pos, "unterminated escape")
			}
			switch s[pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				pos += 2
			case 'u':
				if pos+6 > len(s) || !isHex4(s[pos+2:pos+6]) {
					return malformed(pos, "bad \\u escape")
				}
				pos += 6
			default:
				return malformed(pos, "bad escape")
			}
		case c < 0x20:
			return malformed(pos, "control character in string")
		default:
			pos++
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether none of the 8 bytes ends a string run: no '"',
// no '\\' and no control character (bytes >= 0x80 are plain UTF-8).
func plain8(x uint64) bool {
	ascii := ^x & msb // high bit clear: an ASCII byte
	below := (x - 0x20*lsb) & ascii
	quote := ((x ^ '"'*lsb) - lsb) & ^(x ^ '"'*lsb) & msb
	bslash := ((x ^ '\\'*lsb) - lsb) & ^(x ^ '\\'*lsb) & msb
	return below|quote|bslash == 0
}

func (sc *scanner) number() error {
	start := sc.pos
	if sc.s[sc.pos] == '-' {
		sc.pos++
	}
	digits := func() int {
		n := 0
		for sc.pos < len(sc.s) && sc.s[sc.pos] >= '0' && sc.s[sc.pos] <= '9' {
			sc.pos++
			n++
		}
		return n
	}
	if sc.pos < len(sc.s) && sc.s[sc.pos] == '0' {
		sc.pos++
	} else if digits() == 0 {
		return malformed(start, "bad number")
	}
	if sc.pos < len(sc.s) && sc.s[sc.pos] == '.' {
		sc.pos++
		if digits() == 0 {
			return malformed(start, "bad number")
		}
	}
	if sc.pos < len(sc.s) && (sc.s[sc.pos] == 'e' || sc.s[sc.pos] == 'E') {
		sc.pos++
		if sc.pos < len(sc.s) && (sc.s[sc.pos] == '+' || sc.s[sc.pos] == '-') {
			sc.pos++
		}
		if digits() == 0 {
			return malformed(start, "bad number")
		}
	}
	return nil
}

func isHex4(s string) bool {
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// unquote returns the value of a validated string literal. Without escapes
// it is a substring of the source (no allocation).
func unquote(raw string) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", fmt.Errorf("%w: expected a JSON string", ErrMalformed)
	}
	inner := raw[1 : len(raw)-1]
	if strings.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	b := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); {
		c := inner[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch inner[i+1] {
		case '"', '\\', '/':
			b = append(b, inner[i+1])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(inner[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(inner) && inner[i] == '\\' && inner[i+1] == 'u' {
					if r2 := hex4(inner[i+2 : i+6]); utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		}
		i += 2
	}
	return string(b), nil
}

func hex4(s string) rune {
	var r rune
	for i := 0; i < 4; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// jsonString decodes a member that must be a string (null counts as empty).
func jsonString(f jsonField) (string, error) {
	if f.raw == "null" {
		return "", nil
	}
	if len(f.raw) == 0 || f.raw[0] != '"' {
		return "", fmt.Errorf("%w: %q must be a string", ErrMalformed, f.key)
	}
	return unquote(f.raw)
}

// jsonInt decodes a member that must be an integer that fits int64.
func jsonInt(f jsonField) (int64, error) {
	n, err := strconv.ParseInt(f.raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q must be an integer", ErrMalformed, f.key)
	}
	return n, nil
}

// jsonObject iterates the members of a member that must be an object.
func jsonObject(f jsonField, fn func(f jsonField) error) error {
	if f.raw == "null" {
		return nil
	}
	if len(f.raw) == 0 || f.raw[0] != '{' {
		return fmt.Errorf("%w: %q must be an object", ErrMalformed, f.key)
	}
	sc := scanner{s: f.raw, trusted: true} // validated when the outer object was read
	return sc.object(0, fn)
}

// seen records which known members an object had, to reject duplicates:
// a document with two "out_trade_no" members is ambiguous and hostile.
type seen uint64

func (s *seen) mark(bit uint, key string) error {
	if *s&(1<<bit) != 0 {
		return fmt.Errorf("%w: duplicate member %q", ErrMalformed, key)
	}
	*s |= 1 << bit
	return nil
}
