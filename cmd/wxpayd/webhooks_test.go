package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/rig"
)

// shopEndpoint is the shop's webhook receiver in the tests: it checks each
// signature with HMAC code of its own (not sink/webhook's Verify), and
// answers 500, late, slowly or by cutting the connection at random until
// calm is set.
type shopEndpoint struct {
	t      *testing.T
	secret []byte
	calm   atomic.Bool

	mu       sync.Mutex
	accepted []hookDelivery // in arrival order, duplicates included
	requests int
	inflight int
	bad      []string
}

type hookDelivery struct {
	id, otn string
	seq     uint64
}

func validHookSignature(secret []byte, header string, body []byte, now time.Time) bool {
	var ts string
	var v1 []string
	for _, kv := range strings.Split(header, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == "t" {
			ts = v
		} else if ok && k == "v1" {
			v1 = append(v1, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Unix()-sec > 300 || sec-now.Unix() > 300 {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	for _, s := range v1 {
		if b, err := hex.DecodeString(s); err == nil && hmac.Equal(b, m.Sum(nil)) {
			return true
		}
	}
	return false
}

func (s *shopEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var e struct {
		EventID    string `json:"event_id"`
		OutTradeNo string `json:"out_trade_no"`
		Seq        uint64 `json:"seq"`
	}
	ok := json.Unmarshal(body, &e) == nil && validHookSignature(s.secret, r.Header.Get("Wxpayd-Signature"), body, time.Now())
	s.mu.Lock()
	s.requests++
	if !ok {
		s.bad = append(s.bad, string(body))
		s.mu.Unlock()
		w.WriteHeader(401)
		return
	}
	status, delay, cut := 204, time.Duration(0), false
	if !s.calm.Load() {
		switch p := rand.IntN(100); {
		case p < 15:
			status = 500
		case p < 20:
			delay = 2 * time.Second // processed, answered past the 1 s timeout
		case p < 25:
			cut = true
		default:
			delay = time.Duration(5+rand.IntN(60)) * time.Millisecond
		}
	}
	if status < 300 && !cut {
		s.accepted = append(s.accepted, hookDelivery{e.EventID, e.OutTradeNo, e.Seq})
	}
	s.inflight++
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inflight--; s.mu.Unlock() }()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
	}
	if cut {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	w.WriteHeader(status)
}

// TestWebhooksSurviveSIGKILL runs the real wxpayd and wxpaysim with a
// webhook endpoint that fails at random, and SIGKILLs wxpayd three times
// while deliveries are in flight. Afterwards every subscribed event in
// every order's history was accepted by the endpoint, nothing else was,
// each order's events were accepted in seq order, and every request's
// signature verified.
func TestWebhooksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: real binaries, ~40 s")
	}
	shop := &shopEndpoint{t: t, secret: []byte("shop-webhook-secret-0123456789")}
	endpoint := httptest.NewServer(shop)
	t.Cleanup(endpoint.Close) // after wxpayd stops: cleanups run last first

	const admin = "hook-admin-token-0123456789"
	subscribed := map[string]bool{"order.created": true, "order.prepaid": true, "order.paid": true}
	m := startMerchant(t, "v3", admin, []string{"--notify-speedup", "100", "--tls-listen", "off"}, "WXPAYD_LOG_LEVEL=warn",
		"WXPAYD_WEBHOOK_URL="+endpoint.URL+"/hooks", "WXPAYD_WEBHOOK_SECRET_FILE="+rig.WriteSecret(t, t.TempDir(), "hook", string(shop.secret)),
		"WXPAYD_WEBHOOK_EVENTS=order.created,order.prepaid,order.paid", "WXPAYD_WEBHOOK_TIMEOUT=1s")
	base := m.base

	hc := &http.Client{Timeout: 5 * time.Second}
	if st, b := call(hc, "PUT", base+"/admin/v1/skus/hook", admin, `{"description":"hook","price":100,"stock":100000}`); st != 200 {
		t.Fatalf("put sku: %d %s", st, b)
	}
	var created, simPaid sync.Map
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for w := range 4 {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				buyer(hc, base, m.sim.URL, fmt.Sprintf("h%d-%d", w, i), "hook", admin, &created, &simPaid)
			}
		}()
	}
	for k := range 3 {
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		shop.mu.Lock()
		inflight := shop.inflight
		shop.mu.Unlock()
		m.crash(t)
		t.Logf("kill %d with %d deliveries in flight; wxpayd is back", k+1, inflight)
	}
	time.Sleep(time.Second)
	close(stopLoad)
	load.Wait()
	time.Sleep(3 * time.Second) // the endpoint keeps failing a while
	shop.calm.Store(true)

	// The orders to check: every acknowledged one, and every one the
	// endpoint heard of (an order whose creation was cut off by a kill
	// may still exist).
	orders := map[string]bool{}
	created.Range(func(k, _ any) bool { orders[k.(string)] = true; return true })
	want := func() map[string][]uint64 {
		shop.mu.Lock()
		for _, d := range shop.accepted {
			orders[d.otn] = true
		}
		shop.mu.Unlock()
		out := map[string][]uint64{}
		for otn := range orders {
			st, b := call(hc, "GET", base+"/admin/v1/orders/"+otn, admin, "")
			var v struct {
				Events []struct {
					Type string `json:"type"`
					Seq  uint64 `json:"seq"`
				} `json:"events"`
			}
			if st != 200 || json.Unmarshal(b, &v) != nil {
				continue
			}
			for _, e := range v.Events {
				if subscribed[e.Type] {
					out[otn] = append(out[otn], e.Seq)
				}
			}
		}
		return out
	}
	var expect map[string][]uint64
	rig.Eventually(t, 60*time.Second, "every subscribed event delivered", func() bool {
		if metric(t, hc, base, "wxpayd_webhook_queue_depth") != 0 {
			return false
		}
		expect = want()
		seen := map[string]bool{}
		shop.mu.Lock()
		for _, d := range shop.accepted {
			seen[d.id] = true
		}
		shop.mu.Unlock()
		for otn, seqs := range expect {
			for _, s := range seqs {
				if !seen[fmt.Sprintf("%s:%d", otn, s)] {
					return false
				}
			}
		}
		return true
	})

	shop.mu.Lock()
	accepted, requests, bad := append([]hookDelivery(nil), shop.accepted...), shop.requests, shop.bad
	shop.mu.Unlock()
	n, paid := 0, 0
	for _, seqs := range expect {
		n += len(seqs)
	}
	simPaid.Range(func(_, _ any) bool { paid++; return true })
	t.Logf("%d orders, %d paid at the simulator, %d events to deliver, %d requests, %d accepted (duplicates included)",
		len(expect), paid, n, requests, len(accepted))
	if len(expect) == 0 || paid == 0 {
		t.Fatal("the load did not get through: nothing to check")
	}
	if len(bad) > 0 {
		t.Errorf("%d requests failed the signature check, e.g. %s", len(bad), bad[0])
	}
	seen := map[string]bool{}
	for _, d := range accepted {
		if seen[d.id] {
			continue
		}
		wanted := false
		for _, s := range expect[d.otn] {
			if s == d.seq {
				wanted = true
				break
			}
			if !seen[fmt.Sprintf("%s:%d", d.otn, s)] {
				t.Errorf("%s accepted before %s:%d", d.id, d.otn, s)
			}
		}
		if !wanted {
			t.Errorf("%s delivered but not a subscribed event of the order's history", d.id)
		}
		seen[d.id] = true
	}
	if dead := metric(t, hc, base, "wxpayd_webhook_dead"); dead != 0 {
		t.Errorf("%v dead letters", dead)
	}
}

func TestWebhookSettings(t *testing.T) {
	dir := t.TempDir()
	secret := rig.WriteSecret(t, dir, "hook", "0123456789abcdef")
	short := rig.WriteSecret(t, dir, "short", "0123")
	base := map[string]string{"WXPAYD_WEBHOOK_URL": "https://shop.example.com/hooks", "WXPAYD_WEBHOOK_SECRET_FILE": secret}
	cases := []struct {
		name  string
		set   map[string]string
		ok    bool
		names string
	}{
		{"no URL: no webhooks", map[string]string{"WXPAYD_WEBHOOK_URL": ""}, true, ""},
		{"the defaults", nil, true, "order.paid order.refunded order.refund_failed order.closed"},
		{"paid after close alone", map[string]string{"WXPAYD_WEBHOOK_EVENTS": "order.paid_after_close, order.closed"}, true,
			"order.paid_after_close order.closed"},
		{"a secret without a URL", map[string]string{"WXPAYD_WEBHOOK_URL": ""}, false, ""},
		{"a URL without a secret", map[string]string{"WXPAYD_WEBHOOK_SECRET_FILE": ""}, false, ""},
		{"a short secret", map[string]string{"WXPAYD_WEBHOOK_SECRET_FILE": short}, false, ""},
		{"a missing secret file", map[string]string{"WXPAYD_WEBHOOK_SECRET_FILE": filepath.Join(dir, "none")}, false, ""},
		{"not http", map[string]string{"WXPAYD_WEBHOOK_URL": "ftp://shop.example.com/"}, false, ""},
		{"an unknown event", map[string]string{"WXPAYD_WEBHOOK_EVENTS": "order.paid,order.shipped"}, false, ""},
		{"a bad timeout", map[string]string{"WXPAYD_WEBHOOK_TIMEOUT": "soon"}, false, ""},
		{"a timeout above a minute", map[string]string{"WXPAYD_WEBHOOK_TIMEOUT": "2m"}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			if c.name == "no URL: no webhooks" {
				env["WXPAYD_WEBHOOK_SECRET_FILE"] = ""
			}
			for k, v := range c.set {
				env[k] = v
			}
			v, err := load(nil, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			w, err := readWebhookSettings(v, newLogger("error"))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				var ce configError
				if !errors.As(err, &ce) || strings.Contains(err.Error(), "0123") {
					t.Fatalf("not a configError, or it shows the secret: %v", err)
				}
				return
			}
			got := ""
			if w != nil {
				got = strings.Join(w.sub.Names(), " ")
			}
			if got != c.names {
				t.Fatalf("events %q, want %q", got, c.names)
			}
		})
	}
	_ = os.Remove(secret)
}
