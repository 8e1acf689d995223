package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

type session struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	ErrCode    int    `json:"errcode"`
	ErrMsg     string `json:"errmsg"`
}

func code2session(t *testing.T, ts *testSim, appid, secret, code, grant string) session {
	t.Helper()
	q := url.Values{"appid": {appid}, "secret": {secret}, "js_code": {code}, "grant_type": {grant}}
	resp, err := http.Get(ts.URL() + "/sns/jscode2session?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return s
}

func TestJSCode2Session(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	id := ts.Identity()
	login := func(code string) session {
		return code2session(t, ts, id.AppID, id.AppSecret, code, "authorization_code")
	}

	t.Run("a code-<x> code maps to a stable openid with a fresh session_key", func(t *testing.T) {
		a := login("code-alice.1")
		b := login("code-alice.2")
		if a.ErrCode != 0 || a.OpenID == "" || len(a.OpenID) != 28 || a.OpenID != b.OpenID ||
			a.SessionKey == "" || a.SessionKey == b.SessionKey {
			t.Fatalf("%+v %+v", a, b)
		}
		if a.OpenID != OpenID(id.AppID, "code-alice") {
			t.Fatal("openid not derived from the code")
		}
		if c := login("code-bob"); c.OpenID == a.OpenID {
			t.Fatal("two users share an openid")
		}
	})
	t.Run("a reused code is 40163", func(t *testing.T) {
		if s := login("code-alice.1"); s.ErrCode != ErrcodeCodeUsed || s.OpenID != "" {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("anything not of the form code-<x> is 40029", func(t *testing.T) {
		for _, c := range []string{"061Abc", "code-", "CODE-x", string(make([]byte, 200))} {
			if s := login(c); s.ErrCode != ErrcodeInvalidCode {
				t.Fatalf("%q: %+v", c, s)
			}
		}
	})
	t.Run("credential errors use WeChat's codes", func(t *testing.T) {
		if s := code2session(t, ts, "wx0000000000000000", id.AppSecret, "code-c1", "authorization_code"); s.ErrCode != ErrcodeInvalidAppID {
			t.Fatalf("%+v", s)
		}
		if s := code2session(t, ts, id.AppID, "wrong", "code-c1", "authorization_code"); s.ErrCode != ErrcodeInvalidSecret {
			t.Fatalf("%+v", s)
		}
		if s := code2session(t, ts, id.AppID, id.AppSecret, "code-c1", "client_credential"); s.ErrCode != ErrcodeInvalidGrantType {
			t.Fatalf("%+v", s)
		}
		if s := code2session(t, ts, id.AppID, id.AppSecret, "", "authorization_code"); s.ErrCode != ErrcodeMissingCode {
			t.Fatalf("%+v", s)
		}
		if s := login("code-c1"); s.ErrCode != 0 {
			t.Fatalf("the code was spent by a failed call: %+v", s)
		}
	})
	t.Run("an issued code works for 5 minutes and then is 40029", func(t *testing.T) {
		var fresh, stale LoginCode
		if st := ts.c.simPost("/sim/v1/login", map[string]string{"user": "carol"}, &fresh); st != 200 {
			t.Fatalf("%d", st)
		}
		ts.c.simPost("/sim/v1/login", map[string]string{"user": "carol"}, &stale)
		ts.clock.Advance(CodeTTL - time.Second)
		if s := login(fresh.Code); s.ErrCode != 0 || s.OpenID != fresh.OpenID || s.OpenID != OpenID(id.AppID, "code-carol") {
			t.Fatalf("within 5 minutes: %+v (issued %+v)", s, fresh)
		}
		ts.clock.Advance(time.Second)
		if s := login(stale.Code); s.ErrCode != ErrcodeInvalidCode {
			t.Fatalf("after 5 minutes: %+v", s)
		}
	})
	t.Run("a user name with a dot is refused by /sim/v1/login", func(t *testing.T) {
		if st := ts.c.simPost("/sim/v1/login", map[string]string{"user": "a.b"}, nil); st != 400 {
			t.Fatalf("%d", st)
		}
	})
	if st := ts.Stats(); st.Logins != 5 || st.Requests["jscode2session"] < 12 || st.Rejected["errcode 40163"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLoginStoreBounds(t *testing.T) {
	t.Parallel()
	l := newLoginStore(3)
	for i := range 10 {
		if got := l.redeem("code-u"+string(rune('a'+i)), t0); got != 0 {
			t.Fatalf("code %d: %d", i, got)
		}
	}
	if n := l.len(); n > 3 {
		t.Fatalf("%d codes kept, bound 3", n)
	}
	// Codes are forgotten after codeMemory.
	l2 := newLoginStore(100)
	l2.redeem("code-x", t0)
	l2.redeem("code-y", t0.Add(codeMemory+time.Second))
	if n := l2.len(); n != 1 {
		t.Fatalf("%d codes kept", n)
	}
}
