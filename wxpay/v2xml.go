package wxpay

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// V2MaxXMLSize is the largest APIv2 XML document ParseV2XML accepts, in bytes.
// Real notifications and replies are under 2 KiB.
const V2MaxXMLSize = 64 << 10

// V2NotifySuccessReply is the exact body WeChat requires in reply to an APIv2
// payment or refund notification that was accepted. Anything else makes
// WeChat retry.
const V2NotifySuccessReply = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"

// V2NotifyFailReply returns the APIv2 reply that rejects a notification, so
// that WeChat retries it: return_code FAIL with msg as return_msg. Invalid
// UTF-8 and characters XML forbids in msg are replaced by U+FFFD. The caller
// owns the result.
func V2NotifyFailReply(msg string) []byte {
	msg = sanitizeXMLText(msg)
	b := make([]byte, 0, 96+len(msg))
	b = append(b, "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg>"...)
	b = appendCDATA(b, msg)
	return append(b, "</return_msg></xml>"...)
}

// ParseV2XML parses the flat APIv2 document <xml><name>value</name>...</xml>
// that WeChat sends in notifications and replies. Values may be text, CDATA
// sections or both; text may use the five predefined entities and numeric
// character references. Values are kept byte for byte (no whitespace
// trimming or line-end normalisation), since they are what WeChat signed.
//
// The parser is strict and safe on hostile input; every rejection wraps
// ErrMalformed: documents over V2MaxXMLSize, invalid UTF-8 or characters XML
// forbids, DOCTYPE, comments and processing instructions (other than a leading
// UTF-8 XML declaration), other entities, attributes, nested elements,
// duplicate names, text outside the fields, and anything after </xml>.
//
// The returned map is new and owned by the caller; body is not retained.
func ParseV2XML(body []byte) (map[string]string, error) {
	return parseFlatXML(body, "xml")
}

// AppendV2XML appends params to dst as <xml> with one element per parameter,
// sorted by name, each value in a CDATA section (a "]]>" inside a value is
// split across two sections), and returns the extended slice. Empty values are
// written as empty elements. Names must be XML names of the form WeChat uses
// ([A-Za-z_][A-Za-z0-9_.-]*); parameters with other names are left out, as
// the peer could not parse them. Values are written as given: text that XML
// forbids (control characters, invalid UTF-8) makes a document the peer
// rejects. AppendV2XML does not retain params.
func AppendV2XML(dst []byte, params map[string]string) []byte {
	var st v2Sorter
	sorted, size := st.sort(params, false)
	size += len("<xml></xml>") + len(sorted)*len("<></><![CDATA[]]>")
	for i := range sorted {
		size += len(sorted[i].k)
	}
	dst = slices.Grow(dst, size)
	dst = append(dst, "<xml>"...)
	for i := range sorted {
		p := &sorted[i]
		dst = append(dst, '<')
		dst = append(dst, p.k...)
		dst = append(dst, '>')
		dst = appendCDATA(dst, p.v)
		dst = append(dst, "</"...)
		dst = append(dst, p.k...)
		dst = append(dst, '>')
	}
	return append(dst, "</xml>"...)
}

// appendCDATA appends v as one or more CDATA sections: each "]]>" is split
// as "]]" | ">" across two sections.
func appendCDATA(dst []byte, v string) []byte {
	dst = append(dst, "<![CDATA["...)
	for {
		i := strings.Index(v, "]]>")
		if i < 0 {
			break
		}
		dst = append(dst, v[:i+2]...)
		dst = append(dst, "]]><![CDATA["...)
		v = v[i+2:]
	}
	dst = append(dst, v...)
	return append(dst, "]]>"...)
}

// sanitizeXMLText replaces invalid UTF-8 and characters XML 1.0 forbids.
func sanitizeXMLText(s string) string {
	ok := true
	for _, r := range s {
		if !isXMLChar(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isXMLChar(r) {
			return r
		}
		return utf8.RuneError
	}, s)
}

// isXMLChar reports whether r is a Char of XML 1.0. utf8.RuneError as decoded
// from invalid UTF-8 is checked separately.
func isXMLChar(r rune) bool {
	switch {
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= utf8.MaxRune:
		return true
	}
	return false
}

// v2MaxNameLen bounds element names; WeChat's are under 32 bytes.
const v2MaxNameLen = 128

func validXMLName(s string) bool {
	if s == "" || len(s) > v2MaxNameLen || xmlByteClass[s[0]]&xmlNameStart == 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if xmlByteClass[s[i]]&xmlNameByte == 0 {
			return false
		}
	}
	return true
}

// Byte classes for the scanners.
const (
	xmlNameByte  = 1 << iota // [A-Za-z0-9_.-]
	xmlNameStart             // [A-Za-z_]
	xmlSuspect               // C0 control other than tab, LF, CR; or 0xEF, which starts U+FFFE and U+FFFF
)

var xmlByteClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
			t[c] = xmlNameByte | xmlNameStart
		case c >= '0' && c <= '9', c == '.', c == '-':
			t[c] = xmlNameByte
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r', c == 0xEF:
			t[c] = xmlSuspect
		}
	}
	return t
}()

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// xmlErr wraps ErrMalformed with a reason; quoted input is cut short.
func xmlErr(format string, args ...any) error {
	return fmt.Errorf("%w: xml: "+format, append([]any{ErrMalformed}, args...)...)
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// flatXML is a cursor over a whole document held as one string, so that names
// and plain values become substrings of it without further copies.
type flatXML struct {
	s   string
	pos int
}

func (x *flatXML) skipSpace() {
	for x.pos < len(x.s) && isXMLSpace(x.s[x.pos]) {
		x.pos++
	}
}

func (x *flatXML) rest() string { return x.s[x.pos:] }

// name reads an element name at pos.
func (x *flatXML) name() string {
	start := x.pos
	for x.pos < len(x.s) && xmlByteClass[x.s[x.pos]]&xmlNameByte != 0 {
		x.pos++
	}
	return x.s[start:x.pos]
}

// tagEnd consumes optional white space and then ">" or "/>"; it reports
// whether the tag was self-closing.
func (x *flatXML) tagEnd(name string) (selfClosing bool, err error) {
	x.skipSpace()
	r := x.rest()
	switch {
	case strings.HasPrefix(r, ">"):
		x.pos++
		return false, nil
	case strings.HasPrefix(r, "/>"):
		x.pos += 2
		return true, nil
	case r == "":
		return false, xmlErr("unexpected end in <%s>", clip(name))
	}
	return false, xmlErr("attribute or bad character in <%s>", clip(name))
}

// parseFlatXML parses <root><name>value</name>...</root>; see ParseV2XML.
func parseFlatXML(body []byte, root string) (map[string]string, error) {
	if len(body) > V2MaxXMLSize {
		return nil, xmlErr("document of %d bytes exceeds %d", len(body), V2MaxXMLSize)
	}
	if err := checkXMLChars(body); err != nil {
		return nil, err
	}
	x := flatXML{s: string(body)}
	x.s = strings.TrimPrefix(x.s, "\uFEFF")
	x.skipSpace()
	if strings.HasPrefix(x.rest(), "<?xml") {
		if err := x.declaration(); err != nil {
			return nil, err
		}
		x.skipSpace()
	}
	if !strings.HasPrefix(x.rest(), "<") {
		return nil, xmlErr("not an XML document")
	}
	x.pos++
	if name := x.name(); name != root {
		if strings.HasPrefix(x.rest(), "!") || strings.HasPrefix(x.rest(), "?") {
			return nil, xmlErr("DOCTYPE, comment or processing instruction before <%s>", root)
		}
		return nil, xmlErr("root element <%s>, want <%s>", clip(name), root)
	}
	// A field takes about 40 bytes or more in practice; over-reserving a little
	// is cheaper than growing the map or counting the fields first.
	m := make(map[string]string, min(len(body)/40, 64))
	empty, err := x.tagEnd(root)
	if err != nil {
		return nil, err
	}
	for !empty {
		x.skipSpace()
		r := x.rest()
		switch {
		case r == "":
			return nil, xmlErr("unexpected end, want </%s>", root)
		case strings.HasPrefix(r, "</"):
			x.pos += 2
			if name := x.name(); name != root {
				return nil, xmlErr("</%s> closes <%s>", clip(name), root)
			}
			if closing, err := x.tagEnd(root); err != nil || closing {
				return nil, xmlErr("bad </%s>", root)
			}
			empty = true
		case strings.HasPrefix(r, "<!"), strings.HasPrefix(r, "<?"):
			return nil, xmlErr("DOCTYPE, comment, CDATA or processing instruction in <%s>", root)
		case r[0] == '<':
			x.pos++
			if err := x.field(m); err != nil {
				return nil, err
			}
		default:
			return nil, xmlErr("text outside a field in <%s>", root)
		}
	}
	x.skipSpace()
	if x.pos != len(x.s) {
		return nil, xmlErr("content after </%s>", root)
	}
	return m, nil
}

// declaration consumes <?xml ...?>, which may only name version 1.0 and the
// UTF-8 encoding.
func (x *flatXML) declaration() error {
	r := x.rest()
	end := strings.Index(r, "?>")
	if end < 0 || len(r) < 6 || !isXMLSpace(r[5]) && r[5] != '?' {
		return xmlErr("bad XML declaration")
	}
	decl := r[5:end]
	x.pos += end + 2
	for {
		decl = strings.TrimLeft(decl, " \t\r\n")
		if decl == "" {
			return nil
		}
		eq := strings.IndexByte(decl, '=')
		if eq <= 0 {
			return xmlErr("bad XML declaration")
		}
		name := strings.TrimRight(decl[:eq], " \t\r\n")
		decl = strings.TrimLeft(decl[eq+1:], " \t\r\n")
		if decl == "" || decl[0] != '"' && decl[0] != '\'' {
			return xmlErr("bad XML declaration")
		}
		q := strings.IndexByte(decl[1:], decl[0])
		if q < 0 {
			return xmlErr("bad XML declaration")
		}
		val := decl[1 : 1+q]
		decl = decl[q+2:]
		switch name {
		case "version":
			if val != "1.0" {
				return xmlErr("XML version %q", clip(val))
			}
		case "encoding":
			if !strings.EqualFold(val, "UTF-8") {
				return xmlErr("encoding %q, want UTF-8", clip(val))
			}
		case "standalone":
		default:
			return xmlErr("bad XML declaration")
		}
	}
}

// field parses one <name>value</name> after its "<" and stores it in m.
func (x *flatXML) field(m map[string]string) error {
	name := x.name()
	if len(name) > v2MaxNameLen || name == "" || xmlByteClass[name[0]]&xmlNameStart == 0 {
		return xmlErr("bad element name")
	}
	selfClosing, err := x.tagEnd(name)
	if err != nil {
		return err
	}
	v := ""
	if !selfClosing {
		if v, err = x.value(name); err != nil {
			return err
		}
	}
	n := len(m)
	if m[name] = v; len(m) == n {
		return xmlErr("duplicate <%s>", clip(name))
	}
	return nil
}

// value reads the content of <name> up to and including </name>. A single
// text run without references, or a single CDATA section, is returned as a
// substring; anything else is assembled in a new buffer.
func (x *flatXML) value(name string) (string, error) {
	var (
		buf    []byte
		single string
		pieces int
	)
	add := func(s string) {
		switch pieces {
		case 0:
			single = s
		case 1:
			buf = append(append(buf, single...), s...)
		default:
			buf = append(buf, s...)
		}
		pieces++
	}
	for {
		r := x.rest()
		lt := strings.IndexByte(r, '<')
		if lt < 0 {
			return "", xmlErr("unexpected end in <%s>", clip(name))
		}
		if amp := strings.IndexByte(r[:lt], '&'); amp >= 0 {
			lt = amp
		}
		if lt > 0 {
			if strings.Contains(r[:lt], "]]>") {
				return "", xmlErr("]]> outside CDATA in <%s>", clip(name))
			}
			add(r[:lt])
			x.pos += lt
			r = r[lt:]
		}
		switch {
		case r[0] == '&':
			c, n, err := xmlReference(r)
			if err != nil {
				return "", err
			}
			add(c)
			x.pos += n
		case strings.HasPrefix(r, "<![CDATA["):
			end := strings.Index(r[9:], "]]>")
			if end < 0 {
				return "", xmlErr("unterminated CDATA in <%s>", clip(name))
			}
			add(r[9 : 9+end])
			x.pos += 9 + end + 3
		case strings.HasPrefix(r, "</"):
			x.pos += 2
			if closing := x.name(); closing != name {
				return "", xmlErr("</%s> closes <%s>", clip(closing), clip(name))
			}
			if selfClosing, err := x.tagEnd(name); err != nil || selfClosing {
				return "", xmlErr("bad </%s>", clip(name))
			}
			if pieces > 1 {
				return string(buf), nil
			}
			return single, nil
		case strings.HasPrefix(r, "<!"), strings.HasPrefix(r, "<?"):
			return "", xmlErr("DOCTYPE, comment or processing instruction in <%s>", clip(name))
		default:
			return "", xmlErr("nested element in <%s>", clip(name))
		}
	}
}

// xmlReference decodes the reference at the start of r ("&...;"): one of the
// five predefined entities or a character reference to an XML Char. It
// returns the text and the length consumed.
func xmlReference(r string) (string, int, error) {
	semi := strings.IndexByte(r[:min(len(r), 12)], ';')
	if semi < 0 {
		return "", 0, xmlErr("bad entity reference")
	}
	ref := r[1:semi]
	switch ref {
	case "lt":
		return "<", semi + 1, nil
	case "gt":
		return ">", semi + 1, nil
	case "amp":
		return "&", semi + 1, nil
	case "apos":
		return "'", semi + 1, nil
	case "quot":
		return `"`, semi + 1, nil
	}
	if len(ref) < 2 || ref[0] != '#' {
		return "", 0, xmlErr("entity &%s; is not predefined", clip(ref))
	}
	digits, base := ref[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if digits == "" {
		return "", 0, xmlErr("bad character reference")
	}
	var c rune
	for i := 0; i < len(digits); i++ {
		d := rune(digits[i])
		switch {
		case d >= '0' && d <= '9':
			d -= '0'
		case base == 16 && d >= 'a' && d <= 'f':
			d -= 'a' - 10
		case base == 16 && d >= 'A' && d <= 'F':
			d -= 'A' - 10
		default:
			return "", 0, xmlErr("bad character reference")
		}
		c = c*base + d
		if c > utf8.MaxRune {
			return "", 0, xmlErr("bad character reference")
		}
	}
	if !isXMLChar(c) {
		return "", 0, xmlErr("character reference to a forbidden character")
	}
	return string(c), semi + 1, nil
}

// checkXMLChars rejects invalid UTF-8 and characters XML 1.0 forbids. In
// valid UTF-8 those are the C0 controls other than tab, LF and CR, and
// U+FFFE and U+FFFF (EF BF BE, EF BF BF).
func checkXMLChars(b []byte) error {
	if !utf8.Valid(b) {
		return xmlErr("invalid UTF-8")
	}
	for i, c := range b {
		if xmlByteClass[c]&xmlSuspect == 0 {
			continue
		}
		if c != 0xEF {
			return xmlErr("control character at byte %d", i)
		}
		if i+2 < len(b) && b[i+1] == 0xBF && b[i+2] >= 0xBE {
			return xmlErr("forbidden character at byte %d", i)
		}
	}
	return nil
}
