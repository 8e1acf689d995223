package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// endRefunds advances the fake clock past the refund delay and returns the
// n notifications that follow, by out_refund_no.
func (ts *testSim) endRefunds(t *testing.T, m *merchant, delay time.Duration, n int) map[string]arrival {
	t.Helper()
	eventually(t, "the refund timers", func() bool { return ts.clock.Waiters() > 0 })
	ts.clock.Advance(delay)
	got := map[string]arrival{}
	for range n {
		a := m.next(t)
		if !a.valid {
			t.Fatalf("notification not valid: %v", a.err)
		}
		got[a.refund.OutRefundNo] = a
	}
	return got
}

func TestRefundOutcomes(t *testing.T) {
	t.Parallel()
	const delay = 10 * time.Second
	for _, tc := range []struct {
		name, outcomes, status, event string
		refundable, refunded          int64 // of the order of 100 after a refund of 40 ended
	}{
		{"success=1: the refund ends SUCCESS with REFUND.SUCCESS and the money is refunded",
			"success=1", wxpay.RefundStatusSuccess, wxpay.EventRefundSuccess, 60, 40},
		{"closed=1: the refund ends CLOSED with REFUND.CLOSED and the money is refundable again",
			"closed=1", wxpay.RefundStatusClosed, wxpay.EventRefundClosed, 100, 0},
		{"abnormal=1: the refund turns ABNORMAL with REFUND.ABNORMAL and the money stays held",
			"abnormal=1", wxpay.RefundStatusAbnormal, wxpay.EventRefundAbnormal, 60, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.RefundOutcomes = tc.outcomes; c.RefundDelay = delay })
			c := ts.c
			m := newMerchant(t, ts.Server, nil)
			otn := "OUTCOME" + tc.status[:3]
			ts.paidOrder(t, m, otn, 100)
			r := decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq(otn, "O1", 40, 100)))
			if r.Status != wxpay.RefundStatusProcessing {
				t.Fatalf("created %+v", r)
			}
			// While PROCESSING the 40 are held.
			c.do("POST", "/v3/refund/domestic/refunds", refundReq(otn, "O2", 61, 100)).wantErr(t, 403, wxpay.CodeNotEnough)
			a := ts.endRefunds(t, m, delay, 1)["O1"]
			if a.event != tc.event || a.refund.RefundStatus != tc.status || a.refund.RefundID != r.RefundID ||
				(a.refund.SuccessTime != "") != (tc.status == wxpay.RefundStatusSuccess) {
				t.Fatalf("notification %s %+v", a.event, a.refund)
			}
			if q := decodeRefund(t, c.do("GET", pathRefundPrefix+"O1", nil)); q.Status != tc.status {
				t.Fatalf("query %+v", q)
			}
			if l := c.ledgerOrder(otn); l.Refunded != tc.refunded || l.PaidTotal != 100 || len(l.Refunds) != 1 ||
				l.Refunds[0].Status != tc.status {
				t.Fatalf("ledger %+v", l)
			}
			if tc.refundable < 100 {
				c.do("POST", "/v3/refund/domestic/refunds", refundReq(otn, "O3", tc.refundable+1, 100)).
					wantErr(t, 403, wxpay.CodeNotEnough)
			}
			decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq(otn, "O4", tc.refundable, 100)))
			st := ts.Stats()
			if st.RefundsDone+st.RefundsClosed+st.RefundsAbnormal != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
	t.Run("a mix draws every outcome", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, func(c *Config) { c.RefundOutcomes = "success=0.4,closed=0.3,abnormal=0.3"; c.RefundDelay = delay })
		m := newMerchant(t, ts.Server, nil)
		ts.paidOrder(t, m, "OUTCOMEMIX", 100)
		for i := range 40 {
			decodeRefund(t, ts.c.do("POST", "/v3/refund/domestic/refunds", refundReq("OUTCOMEMIX", fmt.Sprintf("X%02d", i), 1, 100)))
		}
		seen := map[string]int{}
		for _, a := range ts.endRefunds(t, m, delay, 40) {
			seen[a.refund.RefundStatus]++
		}
		if seen[wxpay.RefundStatusSuccess] == 0 || seen[wxpay.RefundStatusClosed] == 0 || seen[wxpay.RefundStatusAbnormal] == 0 {
			t.Fatalf("outcomes %v", seen)
		}
		st := ts.Stats()
		if st.RefundsDone != uint64(seen[wxpay.RefundStatusSuccess]) || st.RefundsClosed != uint64(seen[wxpay.RefundStatusClosed]) ||
			st.RefundsAbnormal != uint64(seen[wxpay.RefundStatusAbnormal]) {
			t.Fatalf("stats %+v, notifications %v", st, seen)
		}
	})
}

// encrypt is what a merchant does to a sensitive field: RSAES-OAEP with
// SHA-1 under WeChat's key, Base64.
func encrypt(t *testing.T, pub *rsa.PublicKey, s string) string {
	t.Helper()
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, []byte(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ct)
}

func TestAbnormalRefund(t *testing.T) {
	t.Parallel()
	const delay = 10 * time.Second
	ts := startSim(t, func(c *Config) { c.RefundOutcomes = "abnormal=1"; c.RefundDelay = delay })
	c := ts.c
	id := ts.Identity()
	c.serial = id.PublicKeyID
	m := newMerchant(t, ts.Server, nil)
	ts.paidOrder(t, m, "ABNORMAL01", 100)
	a1 := decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("ABNORMAL01", "A1", 40, 100)))
	if n := ts.endRefunds(t, m, delay, 1)["A1"]; n.event != wxpay.EventRefundAbnormal {
		t.Fatalf("notification %+v", n)
	}
	if q := decodeRefund(t, c.do("GET", pathRefundPrefix+"A1", nil)); q.Status != wxpay.RefundStatusAbnormal {
		t.Fatalf("query %+v", q)
	}
	pub := &id.WechatPayKey.PublicKey
	good := func() map[string]any {
		return map[string]any{
			"out_refund_no": "A1", "type": AbnormalToUserCard, "bank_type": "ICBC_DEBIT",
			"bank_account": encrypt(t, pub, "6222020200112233445"), "real_name": encrypt(t, pub, "张三"),
		}
	}
	path := pathRefundPrefix + a1.RefundID + pathAbnormalSuffix
	for _, tc := range []struct {
		name   string
		path   string
		serial string
		mod    func(b map[string]any)
		status int
		code   string
		field  string
	}{
		{"a missing type is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) { delete(b, "type") }, 400, wxpay.CodeParamError, "/type"},
		{"an unknown type is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) { b["type"] = "CASH" }, 400, wxpay.CodeParamError, "/type"},
		{"a user card without bank_type is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) { delete(b, "bank_type") }, 400, wxpay.CodeParamError, "/bank_type"},
		{"a bank WeChat does not list is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) { b["bank_type"] = "HSBC_DEBIT" }, 400, wxpay.CodeParamError, "/bank_type"},
		{"a card number in clear is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) { b["bank_account"] = "6222020200112233445" }, 400, wxpay.CodeParamError, "/bank_account"},
		{"a card number encrypted for another key is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) {
			b["bank_account"] = encrypt(t, &id.PlatformKey.PublicKey, "6222020200112233445")
		}, 400, wxpay.CodeParamError, "/bank_account"},
		{"a missing real_name is PARAM_ERROR", path, id.PublicKeyID, func(b map[string]any) { delete(b, "real_name") }, 400, wxpay.CodeParamError, "/real_name"},
		{"encrypted fields without Wechatpay-Serial are PARAM_ERROR", path, "", func(map[string]any) {}, 400, wxpay.CodeParamError, "/Wechatpay-Serial"},
		{"a refund_id that is not digits is PARAM_ERROR", pathRefundPrefix + "R-1" + pathAbnormalSuffix, id.PublicKeyID, func(map[string]any) {}, 400, wxpay.CodeParamError, "/refund_id"},
		{"another refund's out_refund_no is RESOURCE_NOT_EXISTS", path, id.PublicKeyID, func(b map[string]any) { b["out_refund_no"] = "A9" }, 404, wxpay.CodeResourceNotExists, ""},
	} {
		t.Run("apply-abnormal-refund: "+tc.name, func(t *testing.T) {
			cc := *c
			cc.serial = tc.serial
			b := good()
			tc.mod(b)
			e := cc.do("POST", tc.path, b).wantErr(t, tc.status, tc.code)
			if tc.field != "" && (e.Detail == nil || e.Detail.Field != tc.field) {
				t.Fatalf("detail %+v, want %s", e.Detail, tc.field)
			}
		})
	}
	t.Run("apply-abnormal-refund of a refund that is not ABNORMAL is INVALID_REQUEST", func(t *testing.T) {
		a2 := decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("ABNORMAL01", "A2", 10, 100)))
		b := good()
		b["out_refund_no"] = "A2"
		c.do("POST", pathRefundPrefix+a2.RefundID+pathAbnormalSuffix, b).wantErr(t, 400, wxpay.CodeInvalidRequest)
	})
	t.Run("apply-abnormal-refund to the user's card: PROCESSING, then SUCCESS with REFUND.SUCCESS", func(t *testing.T) {
		r := decodeRefund(t, c.do("POST", path, good()))
		if r.Status != wxpay.RefundStatusProcessing || r.RefundID != a1.RefundID || r.Amount.Refund != 40 ||
			r.Channel != "OTHER_BANKCARD" || !strings.HasSuffix(r.UserReceivedAccount, "3445") {
			t.Fatalf("answer %+v", r)
		}
		c.do("POST", path, good()).wantErr(t, 400, wxpay.CodeInvalidRequest) // no longer ABNORMAL
		got := ts.endRefunds(t, m, delay, 2)                                 // A1 succeeds, A2 turns ABNORMAL
		if got["A1"].event != wxpay.EventRefundSuccess || got["A1"].refund.RefundStatus != wxpay.RefundStatusSuccess ||
			got["A2"].event != wxpay.EventRefundAbnormal {
			t.Fatalf("notifications %+v", got)
		}
		if l := c.ledgerOrder("ABNORMAL01"); l.Refunded != 40 {
			t.Fatalf("ledger %+v", l)
		}
	})
	t.Run("apply-abnormal-refund to the merchant's account needs no card", func(t *testing.T) {
		a2 := decodeRefund(t, c.do("GET", pathRefundPrefix+"A2", nil))
		r := decodeRefund(t, c.do("POST", pathRefundPrefix+a2.RefundID+pathAbnormalSuffix,
			map[string]any{"out_refund_no": "A2", "type": AbnormalToMerchantCard}))
		if r.Status != wxpay.RefundStatusProcessing {
			t.Fatalf("answer %+v", r)
		}
		if got := ts.endRefunds(t, m, delay, 1); got["A2"].refund.RefundStatus != wxpay.RefundStatusSuccess {
			t.Fatalf("notifications %+v", got)
		}
		if l := c.ledgerOrder("ABNORMAL01"); l.Refunded != 50 {
			t.Fatalf("ledger %+v", l)
		}
		if st := ts.Stats(); st.AbnormalApplied != 2 || st.RefundsAbnormal != 2 || st.RefundsDone != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestRefundAmountLimits(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.RefundDelay = time.Hour })
	c := ts.c
	m := newMerchant(t, ts.Server, nil)
	ts.paidOrder(t, m, "LIMIT00100", 100)
	ts.paidOrder(t, m, "LIMITHUGE1", math.MaxInt64)
	for _, tc := range []struct {
		name          string
		otn, orn      string
		refund, total int64
		status        int
		code          string
	}{
		{"a refund of 0 is PARAM_ERROR", "LIMIT00100", "L1", 0, 100, 400, wxpay.CodeParamError},
		{"a negative refund is PARAM_ERROR", "LIMIT00100", "L1", -1, 100, 400, wxpay.CodeParamError},
		{"a refund above amount.total is PARAM_ERROR", "LIMIT00100", "L1", 101, 100, 400, wxpay.CodeParamError},
		{"a refund of MaxInt64 on an order of 100 is PARAM_ERROR", "LIMIT00100", "L1", math.MaxInt64, 100, 400, wxpay.CodeParamError},
		{"a refund of MaxInt64 with the wrong total is PARAM_ERROR", "LIMIT00100", "L1", math.MaxInt64, math.MaxInt64 - 1, 400, wxpay.CodeParamError},
		{"a refund of 1 of the huge order is accepted", "LIMITHUGE1", "H1", 1, math.MaxInt64, 200, ""},
		{"then MaxInt64 is NOT_ENOUGH (refunded+amount would overflow)", "LIMITHUGE1", "H2", math.MaxInt64, math.MaxInt64, 403, wxpay.CodeNotEnough},
		{"then exactly what is left is accepted", "LIMITHUGE1", "H3", math.MaxInt64 - 1, math.MaxInt64, 200, ""},
		{"then 1 more is NOT_ENOUGH", "LIMITHUGE1", "H4", 1, math.MaxInt64, 403, wxpay.CodeNotEnough},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.do("POST", "/v3/refund/domestic/refunds", refundReq(tc.otn, tc.orn, tc.refund, tc.total))
			if tc.status == 200 {
				decodeRefund(t, a)
				return
			}
			a.wantErr(t, tc.status, tc.code)
		})
	}
	l := c.ledgerOrder("LIMITHUGE1")
	var held int64
	for _, rf := range l.Refunds {
		held += rf.Amount
	}
	if len(l.Refunds) != 2 || held != math.MaxInt64 || l.Calls.Refund != 4 {
		t.Fatalf("ledger %+v", l)
	}
}

func TestRefundRetries(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.RefundDelay = time.Hour })
	c := ts.c
	m := newMerchant(t, ts.Server, nil)
	ts.paidOrder(t, m, "RETRY00001", 100)
	ts.paidOrder(t, m, "RETRY00002", 100)
	// race sends n refunds at once; orn(i) names each.
	race := func(n int, otn string, orn func(i int) string, amount int64) []answer {
		out := make([]answer, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				out[i], errs[i] = c.try("POST", "/v3/refund/domestic/refunds", refundReq(otn, orn(i), amount, 100), nil)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	t.Run("twenty concurrent retries of one out_refund_no make one refund", func(t *testing.T) {
		ids := map[string]int{}
		for _, a := range race(20, "RETRY00001", func(int) string { return "SAME" }, 60) {
			ids[decodeRefund(t, a).RefundID]++
		}
		if l := c.ledgerOrder("RETRY00001"); len(ids) != 1 || len(l.Refunds) != 1 || l.Refunds[0].Amount != 60 {
			t.Fatalf("refund ids %v, ledger %+v", ids, l)
		}
	})
	t.Run("twenty concurrent refunds of 10 of an order of 100: ten accepted, ten NOT_ENOUGH", func(t *testing.T) {
		ok, short := 0, 0
		for _, a := range race(20, "RETRY00002", func(i int) string { return "PART" + string(rune('A'+i)) }, 10) {
			switch {
			case a.status == 200:
				ok++
			case a.err != nil && a.err.Code == wxpay.CodeNotEnough:
				short++
			default:
				t.Fatalf("answer %d %s", a.status, a.body)
			}
		}
		if ok != 10 || short != 10 {
			t.Fatalf("%d accepted, %d NOT_ENOUGH", ok, short)
		}
	})
	if st := ts.Stats(); st.Refunds != 11 {
		t.Fatalf("refunds %d", st.Refunds)
	}
}
