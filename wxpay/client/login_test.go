package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	loginAppID  = "wx1234567890abcdef"
	loginSecret = "s3cr3t&js_code=x/+?%#=" // needs escaping in a query
)

// newLoginFake answers /sns/jscode2session by js_code.
func newLoginFake(t *testing.T) *fakeWeChat {
	f := newFake(t)
	f.setRoute("GET", "/sns/jscode2session", func(r *recorded) (int, []byte, answerOpts) {
		if r.query["appid"] != loginAppID || r.query["secret"] != loginSecret || r.query["grant_type"] != "authorization_code" {
			return 200, []byte(`{"errcode":40125,"errmsg":"invalid appsecret"}`), answerOpts{}
		}
		code := r.query["js_code"]
		switch code {
		case "ok", "a+b&c=d/é":
			return 200, []byte(`{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","session_key":"tiihtNczf5v6AKRyjwEUhQ==","unionid":"o6_bmasdasdsad6_2sgVt7hMZOPfL","errcode":0,"errmsg":"ok"}`), answerOpts{}
		case "no-errcode":
			return 200, []byte(`{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}`), answerOpts{}
		case "zero-no-openid":
			return 200, []byte(`{"errcode":0,"errmsg":"ok"}`), answerOpts{}
		case "empty":
			return 200, []byte(`{}`), answerOpts{}
		case "not-json":
			return 200, []byte(`<html>` + loginSecret + `</html>`), answerOpts{}
		case "http-500":
			return 500, []byte(`oops`), answerOpts{}
		case "echo-secret":
			return 200, []byte(fmt.Sprintf(`{"errcode":40013,"errmsg":"invalid appid, secret %s"}`, jsonEscape(loginSecret))), answerOpts{}
		case "slow":
			f.block()
			return 200, nil, answerOpts{}
		}
		var n int
		if _, err := fmt.Sscanf(code, "err%d", &n); err == nil {
			return 200, []byte(fmt.Sprintf(`{"errcode":%d,"errmsg":"error %d, rid: 6543a1b2-1c2d3e4f"}`, n, n)), answerOpts{}
		}
		return 200, []byte(`{"errcode":40029,"errmsg":"invalid code"}`), answerOpts{}
	})
	return f
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

func newTestLoginClient(t *testing.T, f *fakeWeChat, cfg LoginConfig, opts ...Option) *LoginClient {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://api.weixin.test"
	}
	cfg.AppID, cfg.AppSecret = loginAppID, loginSecret
	l, err := NewLoginClient(cfg, append([]Option{WithDial(f.dial)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.releaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

// assertNoLoginSecrets fails if err's text holds the app secret, raw or
// query-escaped.
func assertNoLoginSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{loginSecret, "s3cr3t"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the app secret", err)
		}
	}
}

func TestLoginConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  LoginConfig
		ok   bool
	}{
		{"an AppID and AppSecret suffice", LoginConfig{AppID: "wx1", AppSecret: "s"}, true},
		{"a missing AppID is refused", LoginConfig{AppSecret: "s"}, false},
		{"a missing AppSecret is refused", LoginConfig{AppID: "wx1"}, false},
		{"a base URL with a query is refused", LoginConfig{AppID: "wx1", AppSecret: "s", BaseURL: "https://api.weixin.qq.com?x=1"}, false},
		{"a negative timeout is refused", LoginConfig{AppID: "wx1", AppSecret: "s", Timeout: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v", err)
			}
			assertNoLoginSecrets(t, err)
		})
	}
	t.Run("printing a config hides the secret", func(t *testing.T) {
		cfg := LoginConfig{AppID: "wx1", AppSecret: loginSecret}
		for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
			if strings.Contains(s, "s3cr3t") {
				t.Fatalf("%q shows the secret", s)
			}
		}
	})
	t.Run("printing or encoding a session hides the session key", func(t *testing.T) {
		s := Session{OpenID: "o1", SessionKey: "tiihtNczf5v6AKRyjwEUhQ==", UnionID: "u1"}
		b, _ := json.Marshal(s)
		for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), string(b)} {
			if strings.Contains(out, "tiiht") {
				t.Fatalf("%q shows the session key", out)
			}
		}
	})
}

func TestCode2Session(t *testing.T) {
	t.Parallel()
	f := newLoginFake(t)
	l := newTestLoginClient(t, f, LoginConfig{})
	ctx := context.Background()

	for _, tc := range []struct {
		name    string
		code    string
		unionID string
	}{
		{"a session is returned", "ok", "o6_bmasdasdsad6_2sgVt7hMZOPfL"},
		{"an answer without errcode is a success", "no-errcode", ""},
		{"every query value is escaped", "a+b&c=d/é", "o6_bmasdasdsad6_2sgVt7hMZOPfL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := l.Code2Session(ctx, tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if s.OpenID != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" || s.SessionKey != "tiihtNczf5v6AKRyjwEUhQ==" || s.UnionID != tc.unionID {
				t.Fatalf("session %+v", s)
			}
			if r := f.lastRequest(t); r.query["js_code"] != tc.code || r.header["Accept"] != "application/json" {
				t.Fatalf("request %s %v", r.uri, r.header)
			}
		})
	}

	for _, tc := range []struct {
		name     string
		code     string
		errcode  int
		sentinel error
	}{
		{"errcode -1 is busy and retryable", "err-1", -1, ErrLoginBusy},
		{"errcode 40029 is an invalid code", "err40029", 40029, ErrInvalidCode},
		{"errcode 40163 is a used code", "err40163", 40163, ErrCodeUsed},
		{"errcode 45011 is rate limited", "err45011", 45011, ErrLoginRateLimited},
		{"errcode 40226 is a high-risk user", "err40226", 40226, ErrHighRisk},
		{"an unknown errcode is still a LoginError", "err61024", 61024, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Code2Session(ctx, tc.code)
			var le *LoginError
			if !errors.As(err, &le) || le.Code != tc.errcode || !strings.Contains(le.Message, "rid:") {
				t.Fatalf("err = %v", err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v, want %v", err, tc.sentinel)
			}
			for _, other := range []error{ErrLoginBusy, ErrInvalidCode, ErrCodeUsed, ErrLoginRateLimited, ErrHighRisk} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Fatalf("err also matches %v", other)
				}
			}
			if le.Retryable() != (tc.errcode == -1 || tc.errcode == 45011) {
				t.Fatal("Retryable is wrong")
			}
			assertNoLoginSecrets(t, err)
		})
	}

	for _, tc := range []struct {
		name string
		code string
		want error
	}{
		{"errcode 0 without openid is an error", "zero-no-openid", ErrBadResponse},
		{"an answer with neither openid nor errcode is an error", "empty", ErrBadResponse},
		{"an answer that is not JSON is an error", "not-json", ErrBadResponse},
		{"an HTTP error status is a transport error", "http-500", ErrTransport},
		{"an errmsg echoing the secret is redacted", "echo-secret", nil},
		{"an empty code is refused before sending", "", ErrInvalidRequest},
		{"a code over 128 bytes is refused before sending", strings.Repeat("c", 129), ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Code2Session(ctx, tc.code)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			assertNoLoginSecrets(t, err)
		})
	}
}

func TestCode2SessionFailures(t *testing.T) {
	t.Parallel()

	t.Run("a slow server times out without leaking the secret", func(t *testing.T) {
		t.Parallel()
		f := newLoginFake(t)
		l := newTestLoginClient(t, f, LoginConfig{Timeout: 150 * time.Millisecond})
		start := time.Now()
		_, err := l.Code2Session(context.Background(), "slow")
		if !errors.Is(err, ErrTimeout) || time.Since(start) > 150*time.Millisecond+slack {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
		assertNoLoginSecrets(t, err)
	})

	t.Run("a cancelled context returns promptly", func(t *testing.T) {
		t.Parallel()
		f := newLoginFake(t)
		l := newTestLoginClient(t, f, LoginConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			eventually(t, "the request to arrive", func() bool { return f.hits.Load() == 1 })
			cancel()
		}()
		_, err := l.Code2Session(ctx, "slow")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		assertNoLoginSecrets(t, err)
	})

	t.Run("a dial error that echoes the secret is redacted", func(t *testing.T) {
		t.Parallel()
		f := newLoginFake(t)
		l := newTestLoginClient(t, f, LoginConfig{}, WithDial(func(addr string) (net.Conn, error) {
			return nil, fmt.Errorf("proxy refused secret %s, escaped %s", loginSecret, url.QueryEscape(loginSecret))
		}))
		_, err := l.Code2Session(context.Background(), "ok")
		if !errors.Is(err, ErrTransport) {
			t.Fatalf("err = %v", err)
		}
		assertNoLoginSecrets(t, err)
	})

	t.Run("a full pool returns ErrOverloaded", func(t *testing.T) {
		t.Parallel()
		f := newLoginFake(t)
		l := newTestLoginClient(t, f, LoginConfig{MaxConns: 1, MaxConnWaitTimeout: 30 * time.Millisecond})
		go func() { _, _ = l.Code2Session(context.Background(), "slow") }()
		eventually(t, "the first request", func() bool { return f.hits.Load() == 1 })
		_, err := l.Code2Session(context.Background(), "ok")
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("err = %v", err)
		}
		assertNoLoginSecrets(t, err)
	})
}
