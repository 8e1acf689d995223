package ingress

import (
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// httpLog is the fasthttp.Logger of the server: fasthttp's own lines (a
// connection it could not read or answer, an accept error) become one
// structured line each in the server's slog logger, scrubbed by
// redactHTTPLog. fasthttp is also told not to put request bytes in its
// errors (SecureErrorLogMessage); the scrubbing holds even if it does.
// Safe for concurrent use.
type httpLog struct{ l *slog.Logger }

// Printf implements fasthttp.Logger.
func (h httpLog) Printf(format string, args ...any) {
	h.l.Warn("http server", "component", "fasthttp", "detail", redactHTTPLog(fmt.Sprintf(format, args...)))
}

const (
	// maxHTTPLogDetail bounds a scrubbed line, in bytes.
	maxHTTPLogDetail = 512
	// minOpaqueRun is the shortest run of token characters taken for a
	// credential: the admin token's minimum length. Shorter runs (ports,
	// error words, byte counts) stay readable.
	minOpaqueRun = 16
	redacted     = "[redacted]"
)

// credentialNames start a value that is removed up to the end of its line
// or field: header names, cookie and query names, and schemes.
var credentialNames = []string{"authorization", "cookie", "bearer", "token", "session", "secret", "passw", "apikey", "api_key"}

// redactHTTPLog removes from a log line whatever could be a credential,
// assuming that any request bytes in it may be hostile or secret:
//   - everything from "contents:" on (fasthttp's quote of the request);
//   - the value after a credential name (Authorization, Cookie, Bearer,
//     token=, session=, ...) up to the end of its line or field, whether
//     the line ends raw (CR, LF) or escaped by %q (\r, \n, a quote);
//   - every run of minOpaqueRun or more token characters (Base64, Base64url,
//     hex): a session token or an admin token without its header name;
//   - control characters; and it bounds the result to maxHTTPLogDetail
//     bytes.
func redactHTTPLog(s string) string {
	if i := indexFold(s, "contents:"); i >= 0 {
		s = s[:i] + "contents: " + redacted
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if tokenChar(s[i]) {
			j := i
			for j < len(s) && tokenChar(s[j]) {
				j++
			}
			if j-i >= minOpaqueRun {
				b = append(b, redacted...)
				i = j
				continue
			}
			// A short run may hold a credential name: "nCookie" after the
			// escaped \n that %q makes of a line end.
			k := i
			for k < j && credentialAt(s, k) == 0 {
				k++
			}
			b = append(b, s[i:k]...)
			if i = k; i == j {
				continue
			}
		}
		if n := credentialAt(s, i); n > 0 {
			j := i + n
			for j < len(s) && nameChar(s[j]) { // the rest of the name: session_id, tokens
				j++
			}
			for j < len(s) && (s[j] == ' ' || s[j] == ':' || s[j] == '=' || s[j] == '\t' || s[j] == '\'') {
				j++
			}
			end := valueEnd(s, j)
			b = append(b, s[i:j]...)
			if end > j {
				b = append(b, redacted...)
			}
			i = end
			continue
		}
		b = append(b, s[i])
		i++
	}
	// One pass for control characters, whichever branch copied them (the
	// tab between a credential's name and its value, too). No byte of a
	// multi-byte UTF-8 sequence is below 0x80, so runes stay whole.
	for k, c := range b {
		if c < 0x20 || c == 0x7f {
			b[k] = ' '
		}
	}
	if len(b) > maxHTTPLogDetail {
		n := maxHTTPLogDetail
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		b = append(b[:n], "…"...)
	}
	return string(b)
}

// credentialAt returns the length of the credential name at s[i:], or 0.
// A name counts anywhere (X-Session-Token, mytoken=): a line only loses
// more than it needs to.
func credentialAt(s string, i int) int {
	for _, n := range credentialNames {
		if len(s)-i >= len(n) && equalFold(s[i:i+len(n)], n) {
			return len(n)
		}
	}
	return 0
}

// valueEnd returns where the value starting at s[j] ends: at a raw CR or
// LF, an escaped \r or \n, an unescaped double quote, or an '&' (the next
// query parameter). A value may contain spaces ("Bearer <token>") and
// other escapes.
func valueEnd(s string, j int) int {
	for ; j < len(s); j++ {
		switch s[j] {
		case '\r', '\n', '"', '&':
			return j
		case '\\':
			if j+1 < len(s) && (s[j+1] == 'r' || s[j+1] == 'n') {
				return j
			}
			j++ // an escaped character belongs to the value
		}
	}
	return len(s)
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// tokenChar: the alphabet of Base64, Base64url and hex, without the '/'
// and '.' that separate paths, hosts and addresses, and the padding '='
// that would join a name to its value (MaxConnsPerIP=128).
func tokenChar(c byte) bool {
	return nameChar(c) || c == '+'
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold compares ASCII case-insensitively; lowerName is lower case.
func equalFold(s, lowerName string) bool {
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lowerName[i] {
			return false
		}
	}
	return true
}

// indexFold is strings.Index, ASCII case-insensitive; sub is lower case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if equalFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
