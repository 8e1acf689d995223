package sim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// wx.login codes.
//
// A code has the form code-<anything>. Its openid is derived from the appid
// and <anything> up to the first '.', so code-alice.1 and code-alice.2 are
// two logins of the same buyer. A code works once (40163 on reuse) and for
// CodeTTL after it was issued: by POST /sim/v1/login, or, for a code the
// simulator never issued, when it is first presented. Anything else is
// 40029. Codes are remembered for codeMemory, at most MaxLoginCodes of them
// (the oldest are forgotten first).

// CodeTTL is how long a wx.login code stays valid.
const CodeTTL = 5 * time.Minute

const (
	codePrefix = "code-"
	maxCodeLen = 128
	codeMemory = 30 * time.Minute
)

// WeChat's jscode2session error codes.
const (
	ErrcodeInvalidAppID     = 40013
	ErrcodeInvalidGrantType = 40002
	ErrcodeInvalidCode      = 40029
	ErrcodeMissingCode      = 41008
	ErrcodeInvalidSecret    = 40125
	ErrcodeCodeUsed         = 40163
	ErrcodeBusy             = -1    // system busy: retry (system_error faults)
	ErrcodeRateLimited      = 45011 // 100 calls per user per minute (rate_limited faults)
)

type codeEntry struct {
	issued time.Time
	used   bool
}

type loginStore struct {
	mu    sync.Mutex
	codes map[string]*codeEntry
	fifo  []string // codes in issue order, for forgetting
	head  int
	max   int
}

func newLoginStore(max int) *loginStore {
	return &loginStore{codes: map[string]*codeEntry{}, max: max}
}

func (l *loginStore) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.codes)
}

// prune forgets codes older than codeMemory and the oldest beyond max.
// Caller holds mu.
func (l *loginStore) prune(now time.Time) {
	for l.head < len(l.fifo) {
		c := l.fifo[l.head]
		e := l.codes[c]
		if e != nil && len(l.codes) < l.max && now.Sub(e.issued) < codeMemory {
			break
		}
		delete(l.codes, c)
		l.fifo[l.head] = ""
		l.head++
	}
	if l.head > 1024 && l.head*2 > len(l.fifo) {
		l.fifo = append(l.fifo[:0], l.fifo[l.head:]...)
		l.head = 0
	}
}

// issue registers a code issued now.
func (l *loginStore) issue(code string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	if _, ok := l.codes[code]; ok {
		return
	}
	l.codes[code] = &codeEntry{issued: now}
	l.fifo = append(l.fifo, code)
}

// redeem uses a code: 0 on success, else WeChat's errcode.
func (l *loginStore) redeem(code string, now time.Time) int {
	if len(code) <= len(codePrefix) || len(code) > maxCodeLen || !strings.HasPrefix(code, codePrefix) {
		return ErrcodeInvalidCode
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	e := l.codes[code]
	switch {
	case e == nil:
		l.codes[code] = &codeEntry{issued: now, used: true}
		l.fifo = append(l.fifo, code)
		return 0
	case e.used:
		return ErrcodeCodeUsed
	case now.Sub(e.issued) >= CodeTTL:
		return ErrcodeInvalidCode
	}
	e.used = true
	return 0
}

// OpenID returns the stable openid the simulator derives for a wx.login code
// under appID: "o" and 27 characters, like WeChat's.
func OpenID(appID, code string) string {
	user := strings.TrimPrefix(code, codePrefix)
	if i := strings.IndexByte(user, '.'); i >= 0 {
		user = user[:i]
	}
	sum := sha256.Sum256([]byte("wxpaysim-openid\x00" + appID + "\x00" + user))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

// jscode2session serves GET /sns/jscode2session. Faults are drawn as the
// request arrives: system_error answers errcode -1 and rate_limited 45011
// (code not used); lost uses the code, then answers -1 or cuts the
// connection.
func (s *Server) jscode2session(ctx *fasthttp.RequestCtx) {
	s.stats.requests[epLogin].Add(1)
	f := s.drawFault(fpLogin)
	switch f {
	case afSystemError:
		s.latency()
		s.writeLogin(ctx, s.loginError(ErrcodeBusy))
		return
	case afRateLimited:
		s.latency()
		s.writeLogin(ctx, s.loginError(ErrcodeRateLimited))
		return
	case afBadGateway:
		s.latency()
		writeBadGateway(ctx)
		return
	}
	q := ctx.QueryArgs()
	now := s.clock.Now()
	code := 0
	switch {
	case string(q.Peek("appid")) != s.id.AppID:
		code = ErrcodeInvalidAppID
	case subtle.ConstantTimeCompare(q.Peek("secret"), []byte(s.id.AppSecret)) != 1:
		code = ErrcodeInvalidSecret
	case string(q.Peek("grant_type")) != "authorization_code":
		code = ErrcodeInvalidGrantType
	case len(q.Peek("js_code")) == 0:
		code = ErrcodeMissingCode
	default:
		code = s.logins.redeem(string(q.Peek("js_code")), now)
	}
	var body []byte
	if code != 0 {
		s.stats.reject("errcode " + strconv.Itoa(code))
		body = s.loginError(code)
	} else {
		s.stats.logins.Add(1)
		var k [16]byte
		if _, err := rand.Read(k[:]); err != nil {
			panic("sim: crypto/rand: " + err.Error())
		}
		ob := newObj(make([]byte, 0, 96))
		ob.str("session_key", base64.StdEncoding.EncodeToString(k[:]))
		ob.str("openid", OpenID(s.id.AppID, string(q.Peek("js_code"))))
		body = ob.done()
	}
	s.latency()
	switch f {
	case afSlow:
		s.slowWait()
	case afLost:
		if s.chance(0.5) {
			s.writeLogin(ctx, s.loginError(ErrcodeBusy))
		} else {
			cut(ctx)
		}
		return
	default:
		if s.chance(s.cfg.DropRate) {
			s.drop(ctx)
			return
		}
	}
	s.writeLogin(ctx, body)
}

// writeLogin writes a jscode2session answer: WeChat answers 200 with errcode
// in the body, as text/plain JSON.
func (s *Server) writeLogin(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetStatusCode(200)
	ctx.SetContentType("text/plain")
	ctx.SetBody(body)
}

var errmsgs = map[int]string{
	ErrcodeInvalidAppID:     "invalid appid",
	ErrcodeInvalidSecret:    "invalid appsecret",
	ErrcodeInvalidGrantType: "invalid grant_type",
	ErrcodeMissingCode:      "missing code",
	ErrcodeInvalidCode:      "invalid code",
	ErrcodeCodeUsed:         "code been used",
	ErrcodeBusy:             "system error",
	ErrcodeRateLimited:      "api minute-quota reach limit  mustslower  retry next minute",
}

func (s *Server) loginError(code int) []byte {
	ob := newObj(make([]byte, 0, 96))
	ob.num("errcode", int64(code))
	ob.str("errmsg", errmsgs[code]+", rid: "+strings.ToLower(s.requestID()))
	return ob.done()
}

// loginBody is the JSON of POST /sim/v1/login.
type loginBody struct {
	User string `json:"user"`
}

// LoginCode is the answer of POST /sim/v1/login: a fresh code for the user,
// valid CodeTTL from now, and the openid it will map to.
type LoginCode struct {
	Code   string `json:"code"`
	OpenID string `json:"openid"`
}

// simLogin serves POST /sim/v1/login: it issues a wx.login code as the Mini
// Program's wx.login would.
func (s *Server) simLogin(ctx *fasthttp.RequestCtx) {
	var b loginBody
	if len(ctx.PostBody()) > 0 {
		if err := json.Unmarshal(ctx.PostBody(), &b); err != nil {
			writeJSON(ctx, 400, simError{"PARAM_ERROR", "want {\"user\"}"})
			return
		}
	}
	if b.User == "" {
		b.User = randHex(8)
	}
	if len(b.User) > 64 || strings.ContainsAny(b.User, ".&=?# ") {
		writeJSON(ctx, 400, simError{"PARAM_ERROR", "user: up to 64 characters without . & = ? # or space"})
		return
	}
	code := codePrefix + b.User + "." + randHex(8)
	s.logins.issue(code, s.clock.Now())
	writeJSON(ctx, 200, LoginCode{Code: code, OpenID: OpenID(s.id.AppID, code)})
}
