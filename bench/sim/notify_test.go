package sim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// waitRetryScheduled waits until the scheduler sleeps on the next attempt.
func (ts *testSim) waitRetryScheduled(t testing.TB) {
	t.Helper()
	eventually(t, "the retry to be scheduled", func() bool {
		return ts.notifier.len() == 1 && ts.clock.Waiters() >= 1 && len(ts.notifier.work) == 0
	})
}

func TestRetrySchedule(t *testing.T) {
	t.Parallel()
	for _, speedup := range []float64{1, 60} {
		t.Run(fmt.Sprintf("deliveries follow WeChat's schedule divided by %g and give up after the 16th", speedup), func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.NotifySpeedup = speedup })
			m := newMerchant(t, ts.Server, func(int) int { return 500 })
			pid := ts.c.prepay("RETRY00001", "o", m.url)
			start := ts.clock.Now()
			if st, _ := ts.c.pay(pid, "o"); st != 201 {
				t.Fatalf("pay %d", st)
			}
			want := start
			for k := 0; k <= len(RetrySchedule); k++ {
				a := m.next(t)
				if !a.at.Equal(want) {
					t.Fatalf("attempt %d at +%v, want +%v", k+1, a.at.Sub(start), want.Sub(start))
				}
				if !a.valid || a.answer != 500 {
					t.Fatalf("attempt %d: %+v", k+1, a)
				}
				if k == len(RetrySchedule) {
					break
				}
				step := time.Duration(float64(RetrySchedule[k]) / speedup)
				ts.waitRetryScheduled(t)
				ts.clock.Advance(step - time.Millisecond)
				m.none(t, 30*time.Millisecond)
				ts.clock.Advance(time.Millisecond)
				want = want.Add(step)
			}
			eventually(t, "give-up", func() bool { return ts.Stats().Notifications.GivenUp == 1 })
			ts.clock.Advance(48 * time.Hour)
			m.none(t, 50*time.Millisecond)
			n := ts.Stats().Notifications
			if n.Created != 1 || n.Sent != 16 || n.Retried != 15 || n.Failed != 16 || n.Acknowledged != 0 || n.Pending != 0 {
				t.Fatalf("stats %+v", n)
			}
			var v OrderView
			ts.c.simGet("/sim/v1/orders/RETRY00001", &v)
			if len(v.Notifications) != 1 || !v.Notifications[0].GivenUp || len(v.Notifications[0].Attempts) != 16 {
				t.Fatalf("record %+v", v.Notifications)
			}
		})
	}
	t.Run("a 2xx on the third attempt stops the retries", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, nil)
		m := newMerchant(t, ts.Server, func(n int) int { return []int{503, 404, 200}[min(n, 2)] })
		pid := ts.c.prepay("RETRY00002", "o", m.url)
		ts.c.pay(pid, "o")
		m.next(t)
		ts.waitRetryScheduled(t)
		ts.clock.Advance(15 * time.Second)
		m.next(t)
		ts.waitRetryScheduled(t)
		ts.clock.Advance(15 * time.Second)
		if a := m.next(t); a.answer != 200 {
			t.Fatalf("third answer %d", a.answer)
		}
		eventually(t, "ack", func() bool { return ts.Stats().Notifications.Acknowledged == 1 })
		ts.clock.Advance(time.Hour)
		m.none(t, 50*time.Millisecond)
		if n := ts.Stats().Notifications; n.Retried != 2 || n.Pending != 0 || n.Sent != 3 {
			t.Fatalf("stats %+v", n)
		}
	})
	t.Run("a 2xx slower than the timeout counts as a failure", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, func(c *Config) { c.NotifyTimeout = 100 * time.Millisecond })
		m := newMerchant(t, ts.Server, nil)
		slow := make(chan struct{})
		m.status = func(n int) int {
			if n == 0 {
				<-slow
			}
			return 204
		}
		pid := ts.c.prepay("RETRY00003", "o", m.url)
		ts.c.pay(pid, "o")
		eventually(t, "a failed attempt", func() bool { return ts.Stats().Notifications.Failed == 1 })
		close(slow)
		m.next(t)
		ts.waitRetryScheduled(t)
		ts.clock.Advance(15 * time.Second)
		m.next(t)
		eventually(t, "ack", func() bool { return ts.Stats().Notifications.Acknowledged == 1 })
		var v OrderView
		ts.c.simGet("/sim/v1/orders/RETRY00003", &v)
		if at := v.Notifications[0].Attempts; len(at) != 2 || at[0].Error == "" || at[1].Status != 204 {
			t.Fatalf("attempts %+v", at)
		}
	})
	t.Run("a merchant that is down gets retries too", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, nil)
		pid := ts.c.prepay("RETRY00004", "o", "http://127.0.0.1:1/closed")
		ts.c.pay(pid, "o")
		eventually(t, "a failed attempt", func() bool { return ts.Stats().Notifications.Failed == 1 })
		ts.waitRetryScheduled(t)
		ts.clock.Advance(15 * time.Second)
		eventually(t, "a second failed attempt", func() bool { return ts.Stats().Notifications.Failed == 2 })
	})
}

func TestNotificationContent(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ModePublicKey, ModeCertificate, ModeMixed} {
		t.Run(mode+" mode notifications verify, decrypt and match the order", func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.SigningMode = mode })
			id := ts.Identity()
			m := newMerchant(t, ts.Server, nil)
			b := prepayReq(id, "NOTE000001", "oBuyer", m.url)
			b["attach"] = "sku=42&n=1 <\"x\">"
			ts.c.do("POST", "/v3/pay/transactions/jsapi", b).wantOK(t, 200)
			var v OrderView
			ts.c.simGet("/sim/v1/orders/NOTE000001", &v)
			_, txn := ts.c.pay(v.PrepayID, "oBuyer")
			a := m.next(t)
			if !a.valid {
				t.Fatal(a.err)
			}
			tx := a.tx
			if a.event != wxpay.EventTransactionSuccess || tx.TransactionID != txn || tx.OutTradeNo != "NOTE000001" ||
				tx.AppID != id.AppID || tx.MchID != id.MchID || tx.Amount.Total != 100 || tx.Payer.OpenID != "oBuyer" ||
				tx.Attach != "sku=42&n=1 <\"x\">" || tx.TradeType != "JSAPI" || tx.SuccessTime == "" {
				t.Fatalf("transaction %+v", tx)
			}
			n, err := wxpay.ParseNotification(a.rawBody)
			if err != nil {
				t.Fatal(err)
			}
			if n.ResourceType != "encrypt-resource" || n.Summary != "支付成功" || n.Resource.OriginalType != "transaction" ||
				n.Resource.AssociatedData != "transaction" || len(n.Resource.Nonce) != 12 || !strings.HasSuffix(n.CreateTime, "+08:00") ||
				len(n.ID) != 36 {
				t.Fatalf("envelope %+v", n)
			}
			switch mode {
			case ModePublicKey:
				if a.serial != id.PublicKeyID {
					t.Fatalf("serial %s", a.serial)
				}
			case ModeCertificate:
				if a.serial != id.PlatformSerial {
					t.Fatalf("serial %s", a.serial)
				}
			}
		})
	}
}

// collect waits for n arrivals, advancing the fake clock a second at a time
// when none comes (delayed duplicates).
func collect(t *testing.T, ts *testSim, m *merchant, n int) []arrival {
	t.Helper()
	var out []arrival
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n {
		select {
		case a := <-m.ch:
			out = append(out, a)
		case <-time.After(50 * time.Millisecond):
			ts.clock.Advance(time.Second)
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d arrivals", len(out), n)
		}
	}
	return out
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	t.Run("at rate 1.0 each notification gets a duplicate, a SIGNTEST copy and a stale copy besides the genuine one", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, func(c *Config) { c.DupRate, c.TamperRate, c.StaleRate = 1, 1, 1 })
		m := newMerchant(t, ts.Server, nil)
		pid := ts.c.prepay("FAULT00001", "o", m.url)
		ts.c.pay(pid, "o")
		got := collect(t, ts, m, 4)
		var valid, tampered, stale int
		ids := map[string]bool{}
		for _, a := range got {
			switch {
			case a.valid:
				valid++
				ids[a.id] = true
			case errors.Is(a.err, wxpay.ErrExpired):
				stale++
			case errors.Is(a.err, wxpay.ErrBadSignature) || errors.Is(a.err, wxpay.ErrBadSignatureEncoding):
				tampered++
			default:
				t.Fatalf("unexpected failure %v", a.err)
			}
		}
		if valid != 2 || tampered != 1 || stale != 1 || len(ids) != 1 {
			t.Fatalf("valid %d tampered %d stale %d ids %v", valid, tampered, stale, ids)
		}
		m.none(t, 50*time.Millisecond)
		eventually(t, "fault outcomes", func() bool {
			st := ts.Stats()
			return st.Faults["tampered"].Rejected == 1 && st.Faults["stale"].Rejected == 1 &&
				st.Faults["duplicate"].Accepted == 1 && st.Notifications.Acknowledged == 1
		})
		st := ts.Stats()
		for _, k := range []string{"duplicate", "tampered", "stale"} {
			if st.Faults[k].Sent != 1 {
				t.Fatalf("faults %+v", st.Faults)
			}
		}
		if st.Faults["tampered"].Accepted != 0 || st.Faults["stale"].Accepted != 0 || st.Notifications.Created != 1 {
			t.Fatalf("stats %+v", st)
		}
		var v OrderView
		ts.c.simGet("/sim/v1/orders/FAULT00001", &v)
		kinds := map[string]bool{}
		for _, d := range v.Notifications {
			kinds[d.Kind] = true
		}
		if len(v.Notifications) != 4 || !kinds["genuine"] || !kinds["tampered"] || !kinds["stale"] || !kinds["duplicate"] {
			t.Fatalf("records %+v", v.Notifications)
		}
	})
	t.Run("the tampered copy's signature starts with WECHATPAY/SIGNTEST/", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, func(c *Config) { c.TamperRate = 1 })
		m := newMerchant(t, ts.Server, nil)
		var sigs []string
		pid := ts.c.prepay("FAULT00002", "o", m.url)
		ts.c.pay(pid, "o")
		for _, a := range collect(t, ts, m, 2) {
			if !a.valid {
				sigs = append(sigs, a.sig)
			}
		}
		if len(sigs) != 1 || !strings.HasPrefix(sigs[0], wxpay.SignTestPrefix) {
			t.Fatalf("invalid copies %v", sigs)
		}
	})
	t.Run("at rate 0 there are no extra copies", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, nil)
		m := newMerchant(t, ts.Server, nil)
		for i := range 10 {
			o := "FAULT0010" + string(rune('0'+i))
			pid := ts.c.prepay(o, "o", m.url)
			ts.c.pay(pid, "o")
		}
		collect(t, ts, m, 10)
		m.none(t, 50*time.Millisecond)
		st := ts.Stats()
		for k, f := range st.Faults {
			if f.Sent != 0 {
				t.Fatalf("%s copies: %+v", k, f)
			}
		}
		if st.Notifications.Acknowledged != 10 {
			t.Fatalf("stats %+v", st.Notifications)
		}
	})
}

func TestMixedModeNotifications(t *testing.T) {
	t.Parallel()
	for _, share := range []float64{0.5, 1} {
		t.Run(fmt.Sprintf("with public-key share %g the notifications are signed by the expected keys", share), func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.SigningMode = ModeMixed; c.MixedPublicKeyShare = share })
			id := ts.Identity()
			m := newMerchant(t, ts.Server, nil)
			for i := range 20 {
				pid := ts.c.prepay(fmt.Sprintf("MIXED%05d", i), "o", m.url)
				ts.c.pay(pid, "o")
			}
			seen := map[string]int{}
			for _, a := range collect(t, ts, m, 20) {
				if !a.valid {
					t.Fatal(a.err)
				}
				seen[a.serial]++
			}
			if share == 1 && seen[id.PublicKeyID] != 20 {
				t.Fatalf("share 1: %v", seen)
			}
			if share == 0.5 && (seen[id.PublicKeyID] == 0 || seen[id.PlatformSerial] == 0) {
				t.Fatalf("share 0.5: %v", seen)
			}
		})
	}
}

// TestAudit is a small load test's end-state audit: with every fault on,
// each payment is acknowledged once, every tampered and stale copy is
// rejected by a merchant that verifies, and nothing stays pending.
func TestAudit(t *testing.T) {
	t.Parallel()
	const n = 60
	ts := startSim(t, func(c *Config) {
		c.Clock = SystemClock
		c.NotifySpeedup = 1000
		c.DupRate, c.TamperRate, c.StaleRate = 0.5, 0.5, 0.5
		c.Seed = 7
	})
	m := newMerchant(t, ts.Server, nil)
	for i := range n {
		pid := ts.c.prepay(fmt.Sprintf("AUDIT%05d", i), "o", m.url)
		if st, _ := ts.c.pay(pid, "o"); st != 201 {
			t.Fatalf("pay %d: %d", i, st)
		}
	}
	var st Stats
	eventually(t, "every notification and copy to be answered", func() bool {
		st = ts.Stats()
		done := uint64(0)
		for _, f := range st.Faults {
			if f.Sent != f.Accepted+f.Rejected+f.Failed {
				return false
			}
			done += f.Sent
		}
		return st.Notifications.Acknowledged == n && st.Notifications.Pending == 0 && done > 0
	})
	f := st.Faults
	if f["tampered"].Accepted != 0 || f["stale"].Accepted != 0 || f["tampered"].Rejected == 0 || f["stale"].Rejected == 0 ||
		f["duplicate"].Accepted != f["duplicate"].Sent || st.Notifications.Created != n || st.Paid != n || st.Orders != n {
		t.Fatalf("audit: %+v", st)
	}
}
