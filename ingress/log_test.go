package ingress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// lockedBuffer is an io.Writer the server's goroutines share with the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Secrets of the logging tests: an admin token without any word a
// scrubber could key on, and (in the test) a real buyer session token.
const logTestAdminToken = "Zq3xV9rT7mK2pL8wN4cY6hB1"

// loggedServer runs a second server over the stack's components with a
// JSON slog handler writing to logs, on its own loopback listener.
func loggedServer(t *testing.T, s *stack, secure bool) (addr string, logs *lockedBuffer) {
	t.Helper()
	logs = &lockedBuffer{}
	cfg := s.srv.cfg
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.AdminToken = []byte(logTestAdminToken)
	d := s.srv.d
	d.Registry, d.Gatherer = nil, nil // the stack's server registered the metrics
	srv, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.srv.SecureErrorLogMessage {
		t.Error("the server lets fasthttp quote request bytes in its errors")
	}
	srv.srv.SecureErrorLogMessage = secure
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ln) }()
	t.Cleanup(func() {
		_ = srv.Close(context.Background())
		<-done
	})
	return ln.Addr().String(), logs
}

// sendRaw writes raw bytes on a fresh connection, closes its sending side
// and reads until the server closes: fasthttp logs a connection's error
// before it closes it, so the log is complete on return.
func sendRaw(t *testing.T, addr string, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	resp, _ := io.ReadAll(bufio.NewReader(c))
	return string(resp)
}

// TestServerLogsNoSecrets sends what fasthttp cannot read, each carrying a
// credential, and checks the server's log: one JSON object a line, no
// credential, and the connection errors there (not on fasthttp's default
// stderr logger).
func TestServerLogsNoSecrets(t *testing.T) {
	s := newStack(t, stackOpts{})
	session, _ := s.srv.sess.issue("o-log-buyer-0001")
	secrets := []string{logTestAdminToken, session}
	for _, part := range strings.Split(session, ".") { // either half of a token is a leak too
		secrets = append(secrets, part)
	}
	cases := []struct {
		name string
		raw  string
		logs bool // fasthttp reports this connection
	}{
		{"an admin request cut before its final empty line",
			"PUT /admin/v1/skus/x HTTP/1.1\r\nHost: wxpayd\r\nAuthorization: Bearer " + logTestAdminToken + "\r\nContent-Type: application/json\r\n", true},
		{"a buyer request with a broken header line",
			"POST /api/v1/orders HTTP/1.1\r\nHost: wxpayd\r\nAuthorization: Bearer " + session + "\r\nthis line has no colon " + session + "\r\n\r\n", true},
		{"a buyer request with a malformed request line",
			"POST /api/v1/orders?session=" + session + " HTTP/1.1 trailing\r\nHost: wxpayd\r\nCookie: session=" + session + "\r\n\r\n", true},
		{"a request line of garbage carrying the admin token",
			logTestAdminToken + " " + session + "\r\n\r\n", true},
		{"an oversized header",
			"GET /api/v1/orders/01X HTTP/1.1\r\nHost: wxpayd\r\nAuthorization: Bearer " + session + "\r\nX-Pad: " +
				strings.Repeat("p", 8<<10) + "\r\nCookie: admin=" + logTestAdminToken + "\r\n\r\n", false},
	}
	for _, secure := range []bool{true, false} {
		name := "as built"
		if !secure {
			name = "even if fasthttp quotes the request bytes"
		}
		t.Run(name, func(t *testing.T) {
			addr, logs := loggedServer(t, s, secure)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					before := strings.Count(logs.String(), "\n")
					resp := sendRaw(t, addr, tc.raw)
					if !strings.HasPrefix(resp, "HTTP/1.1 4") {
						t.Errorf("answer %.60q, want a 4xx", resp)
					}
					if got := strings.Count(logs.String(), "\n"); tc.logs && got == before {
						t.Errorf("fasthttp's error did not reach the server's log")
					}
				})
			}
			out := logs.String()
			for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if line == "" {
					continue
				}
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Errorf("log line %d is not JSON: %q", i+1, line)
				}
			}
			for _, sec := range secrets {
				if strings.Contains(out, sec) {
					t.Errorf("a secret (%d bytes) is in the log:\n%s", len(sec), out)
				}
			}
			if secure && strings.Contains(out, "contents") {
				t.Errorf("fasthttp quoted request bytes:\n%s", out)
			}
			t.Logf("log:\n%s", out)
		})
	}
}

func TestRedactHTTPLog(t *testing.T) {
	t.Parallel()
	const tok = "eyJ2IjoxLCJleHAiOjE3MDB9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
	cases := []struct {
		name, in string
		keep     []string // must survive
		gone     []string // must not
	}{
		{"fasthttp's quote of a cut-off request",
			`error when serving connection "127.0.0.1:8080"<->"127.0.0.1:51234": error when reading request headers: EOF: buffer size=88, contents: "PUT /admin/v1/skus/x HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer ` + logTestAdminToken + `\r\n"`,
			[]string{"127.0.0.1:51234", "error when reading request headers: EOF", "buffer size=88"},
			[]string{logTestAdminToken, "Bearer Zq"}},
		{"a header block without contents:",
			`bad header "Authorization: Bearer abc.def\r\nCookie: sid=short; theme=dark\r\nHost: x"`,
			[]string{"Host: x"},
			[]string{"abc.def", "sid=short", "theme=dark"}},
		{"raw lines", "Authorization: Basic dXNlcjpwYXNz\nX-Session-Token: s3cr3t\nHost: ok",
			[]string{"Host: ok"}, []string{"dXNlcjpwYXNz", "s3cr3t"}},
		{"a query parameter", `GET /api/v1/orders?session=` + tok + `&x=1 HTTP/1.1`,
			[]string{"&x=1 HTTP/1.1"}, []string{tok, "eyJ2"}},
		{"a token without a name", `cannot parse request line "` + tok + ` ` + logTestAdminToken + `"`,
			[]string{"cannot parse request line"}, []string{"eyJ2IjoxLCJleHAiOjE3MDB9", "c2lnbmF0dXJl", logTestAdminToken}},
		{"an escaped quote does not end a value", `Cookie: a=\"x\" b=secretvalue`,
			nil, []string{"secretvalue"}},
		{"control characters", "line one\r\nline two\x00", []string{"line one  line two "}, []string{"\r", "\n", "\x00"}},
		{"a tab after a credential's name", "session\t", []string{"session "}, []string{"\t"}},
		{"ordinary errors stay readable",
			`The number of connections from 10.0.0.7 exceeds MaxConnsPerIP=128`,
			[]string{"The number of connections from 10.0.0.7 exceeds MaxConnsPerIP=128"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := redactHTTPLog(tc.in)
			for _, k := range tc.keep {
				if !strings.Contains(got, k) {
					t.Errorf("lost %q: %q", k, got)
				}
			}
			for _, g := range tc.gone {
				if strings.Contains(got, g) {
					t.Errorf("kept %q: %q", g, got)
				}
			}
		})
	}
	t.Run("a long line is bounded at a rune boundary", func(t *testing.T) {
		got := redactHTTPLog(strings.Repeat("退款 ", 400))
		if len(got) > maxHTTPLogDetail+len("…") || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
			t.Fatalf("%d bytes: %q", len(got), got[len(got)-10:])
		}
	})
	t.Run("the logger writes one structured line", func(t *testing.T) {
		var buf lockedBuffer
		httpLog{slog.New(slog.NewJSONHandler(&buf, nil))}.Printf("error %q: %v", "Authorization: Bearer "+tok+"\r\n", io.EOF)
		var v struct{ Msg, Component, Detail string }
		if err := json.Unmarshal([]byte(buf.String()), &v); err != nil || v.Component != "fasthttp" || strings.Contains(v.Detail, tok) {
			t.Fatalf("%s (%v)", buf.String(), err)
		}
	})
}

// FuzzRedactHTTPLog: whatever fasthttp prints, the scrubbed line has no
// control characters, stays bounded, and keeps no run of 16 or more token
// characters (a session or admin token) from its input.
func FuzzRedactHTTPLog(f *testing.F) {
	f.Add(`error when reading request headers: EOF: buffer size=88, contents: "PUT / HTTP/1.1\r\nAuthorization: Bearer ` + logTestAdminToken + `\r\n"`)
	f.Add("Cookie: session=AQAAAABrFOUkby1sb2ctYnV5ZXItMDAwMQ.P0Bp5SYdPV1sc26ZeMqyUeuz1BSPj1bMymsMR6iIR7M\r\n")
	f.Add(`cannot find whitespace in the first line of request "` + logTestAdminToken + `\r\n\r\n"`)
	f.Fuzz(func(t *testing.T, in string) {
		out := redactHTTPLog(in)
		if len(out) > maxHTTPLogDetail+len("…") {
			t.Fatalf("%d bytes", len(out))
		}
		for i := 0; i < len(out); i++ {
			if out[i] < 0x20 || out[i] == 0x7f {
				t.Fatalf("control byte %#x in %q", out[i], out)
			}
		}
		for i := 0; i < len(in); {
			j := i
			for j < len(in) && tokenChar(in[j]) {
				j++
			}
			if j-i >= minOpaqueRun && strings.Contains(out, in[i:j]) {
				t.Fatalf("kept %q: %q", in[i:j], out)
			}
			i = max(j, i+1)
		}
	})
}
