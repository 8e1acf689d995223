package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// notice builds a notification the way WeChat does: the transaction
// encrypted with the APIv3 key, the body signed with WeChat's key.
type notice struct {
	headers map[string]string
	body    []byte
}

func (s *stack) transactionJSON(otn, openid string, total int64, mod func(m map[string]any)) []byte {
	m := map[string]any{
		"appid": s.id.AppID, "mchid": s.id.MchID, "out_trade_no": otn, "transaction_id": "4200000" + otn[len(otn)-6:],
		"trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
		"attach": "", "success_time": time.Now().Format(time.RFC3339), "payer": map[string]string{"openid": openid},
		"amount": map[string]any{"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
	}
	if mod != nil {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func (s *stack) makeNotice(plain []byte, alg string, ts time.Time, serial string, key wxpay.PrivateKey) notice {
	s.t.Helper()
	return s.makeNoticeAs(wxpay.EventTransactionSuccess, wxpay.OriginalTypeTransaction, plain, alg, ts, serial, key)
}

// makeNoticeAs is makeNotice for any event_type and resource original_type.
func (s *stack) makeNoticeAs(event, originalType string, plain []byte, alg string, ts time.Time, serial string, key wxpay.PrivateKey) notice {
	s.t.Helper()
	aead, _ := wxpay.NewAEAD(s.id.APIv3Key)
	ct, err := aead.Seal("0a1b2c3d4e5f", originalType, plain)
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{
		"id": "EV-" + strconv.FormatInt(time.Now().UnixNano(), 36), "create_time": time.Now().Format(time.RFC3339),
		"resource_type": "encrypt-resource", "event_type": event, "summary": "支付成功",
		"resource": map[string]string{"original_type": originalType, "algorithm": alg, "ciphertext": ct,
			"associated_data": originalType, "nonce": "0a1b2c3d4e5f"},
	})
	if key == nil {
		key, _ = wxpay.GoBackend.NewPrivateKey(s.id.WechatPayKey)
	}
	tsS := strconv.FormatInt(ts.Unix(), 10)
	sig, err := wxpay.SignResponse(key, tsS, "nonce-test-1", body)
	if err != nil {
		s.t.Fatal(err)
	}
	return notice{headers: map[string]string{
		"Wechatpay-Timestamp": tsS, "Wechatpay-Nonce": "nonce-test-1", "Wechatpay-Signature": sig,
		"Wechatpay-Serial": serial, "Wechatpay-Signature-Type": wxpay.SignatureType, "Content-Type": "application/json",
	}, body: body}
}

func (s *stack) post(n notice) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/wxpay/v3/notify", bytes.NewReader(n.body))
	for k, v := range n.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func (s *stack) history(otn string) []event.Event {
	s.t.Helper()
	h, err := s.st.History(otn)
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

func TestNotificationRejections(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("n", 10)
	tok := s.loginAs("frank")
	openid := s.openid(tok)
	st, c, b := s.order(tok, "n")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	otn := c.OutTradeNo
	good := s.transactionJSON(otn, openid, 1999, nil)
	now := time.Now()
	other, _ := wxpay.GoBackend.NewPrivateKey(s.id.MerchantKey) // not WeChat's key
	pub := s.id.PublicKeyID

	cases := []struct {
		name   string
		n      func() notice
		status int
		event  string // the event recorded on the order, if any
	}{
		{"a body signed by another key", func() notice { return s.makeNotice(good, wxpay.AlgorithmAESGCM, now, pub, other) }, 401, ""},
		{"a SIGNTEST probe", func() notice {
			n := s.makeNotice(good, wxpay.AlgorithmAESGCM, now, pub, nil)
			n.headers["Wechatpay-Signature"] = wxpay.SignTestPrefix + n.headers["Wechatpay-Signature"][19:]
			return n
		}, 401, ""},
		{"an unknown serial", func() notice { return s.makeNotice(good, wxpay.AlgorithmAESGCM, now, "PUB_KEY_ID_UNKNOWN", nil) }, 401, ""},
		{"a stale timestamp", func() notice { return s.makeNotice(good, wxpay.AlgorithmAESGCM, now.Add(-6*time.Minute), pub, nil) }, 401, ""},
		{"a tampered body", func() notice {
			n := s.makeNotice(good, wxpay.AlgorithmAESGCM, now, pub, nil)
			n.body = bytes.Replace(n.body, []byte("支付成功"), []byte("支付失败"), 1)
			return n
		}, 401, ""},
		{"malformed JSON", func() notice {
			n := s.makeNotice(good, wxpay.AlgorithmAESGCM, now, pub, nil)
			key, _ := wxpay.GoBackend.NewPrivateKey(s.id.WechatPayKey)
			n.body = []byte(`{"id":"EV-x",`)
			n.headers["Wechatpay-Signature"], _ = wxpay.SignResponse(key, n.headers["Wechatpay-Timestamp"], "nonce-test-1", n.body)
			return n
		}, 400, ""},
		{"a wrong algorithm", func() notice { return s.makeNotice(good, "AEAD_SM4_GCM", now, pub, nil) }, 400, ""},
		{"an oversize body", func() notice {
			n := s.makeNotice(good, wxpay.AlgorithmAESGCM, now, pub, nil)
			n.body = append(n.body, bytes.Repeat([]byte(" "), wxpay.MaxNotificationBody)...)
			return n
		}, 413, ""},
		{"an amount mismatch", func() notice {
			return s.makeNotice(s.transactionJSON(otn, openid, 1, nil), wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 400, event.NotifyMismatch},
		{"an appid mismatch", func() notice {
			return s.makeNotice(s.transactionJSON(otn, openid, 1999, func(m map[string]any) { m["appid"] = "wx0000000000000000" }), wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 400, event.NotifyMismatch},
		{"a mchid mismatch", func() notice {
			return s.makeNotice(s.transactionJSON(otn, openid, 1999, func(m map[string]any) { m["mchid"] = "1111111111" }), wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 400, event.NotifyMismatch},
		{"an unknown order", func() notice {
			return s.makeNotice(s.transactionJSON("01UNKNOWNORDER0000000", openid, 1999, nil), wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 404, ""},
		// A genuine payment resource under another resource type: WeChat
		// signed it, yet the envelope and the resource disagree.
		{"a payment event whose resource is typed refund", func() notice {
			return s.makeNoticeAs(wxpay.EventTransactionSuccess, wxpay.OriginalTypeRefund, good, wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 400, ""},
		{"a refund event whose resource is typed transaction", func() notice {
			refund, _ := json.Marshal(map[string]any{"mchid": s.id.MchID, "out_trade_no": otn, "transaction_id": "4200000" + otn[len(otn)-6:],
				"out_refund_no": otn + "-R1", "refund_id": "50000000000000000001", "refund_status": "SUCCESS",
				"amount": map[string]int64{"total": 1999, "refund": 1999, "payer_total": 1999, "payer_refund": 1999}})
			return s.makeNoticeAs(wxpay.EventRefundSuccess, wxpay.OriginalTypeTransaction, refund, wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 400, ""},
		{"another event whose resource is typed transaction", func() notice {
			return s.makeNoticeAs("SECURITY_ECHO.SUCCESS", wxpay.OriginalTypeTransaction, good, wxpay.AlgorithmAESGCM, now, pub, nil)
		}, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.history(otn))
			status, body := s.post(tc.n())
			if status != tc.status || !strings.Contains(body, `"code":"FAIL"`) {
				t.Fatalf("got %d %s, want %d with code FAIL", status, body, tc.status)
			}
			if got := s.get(tok, otn).State; got != "PREPAID" {
				t.Fatalf("the order moved to %s", got)
			}
			h := s.history(otn)
			switch {
			case tc.event == "" && len(h) != before:
				t.Fatalf("history grew: %v", h[before:])
			case tc.event != "" && (len(h) != before+1 || h[before].Type != tc.event):
				t.Fatalf("want one %s event, history %v", tc.event, h[before:])
			}
		})
	}
	// The genuine notification still works after all that, twice.
	n := s.makeNotice(good, wxpay.AlgorithmAESGCM, now, s.id.PlatformSerial, nil)
	platform, _ := wxpay.GoBackend.NewPrivateKey(s.id.PlatformKey)
	n = s.makeNotice(good, wxpay.AlgorithmAESGCM, now, s.id.PlatformSerial, platform)
	for i := 0; i < 2; i++ {
		if st, body := s.post(n); st != 204 {
			t.Fatalf("genuine notification #%d: %d %s", i+1, st, body)
		}
	}
	if s.get(tok, otn).State != "PAID" {
		t.Fatal("not paid")
	}
	var paid, dup int
	for _, e := range s.history(otn) {
		switch e.Type {
		case event.OrderPaid:
			paid++
		case event.NotifyDuplicate:
			dup++
		}
	}
	if paid != 1 || dup != 1 {
		t.Fatalf("paid events %d, duplicates %d", paid, dup)
	}
}

func TestPaidAfterCloseIsRecorded(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("pac", 1)
	tok := s.loginAs("grace")
	st, c, b := s.order(tok, "pac")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	s.clock.advance(16 * time.Minute)
	eventually(t, "closed", func() bool { return s.get(tok, c.OutTradeNo).State == "CLOSED" })
	// WeChat reports a payment anyway (the buyer paid while we closed).
	n := s.makeNotice(s.transactionJSON(c.OutTradeNo, s.openid(tok), 1999, nil), wxpay.AlgorithmAESGCM, time.Now(), s.id.PublicKeyID, nil)
	if st, body := s.post(n); st != 204 {
		t.Fatalf("notification: %d %s", st, body)
	}
	if s.get(tok, c.OutTradeNo).State != "PAID" {
		t.Fatal("money received for a closed order was dropped")
	}
	h := s.history(c.OutTradeNo)
	last := h[len(h)-1]
	if last.Type != event.OrderPaid || last.Alert == "" {
		t.Fatalf("want order.paid with an alert, got %+v", last)
	}
	eventually(t, "sold", func() bool { return s.sku("pac").Sold == 1 })
}

func TestAPIAnswerTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{errNoSession, 401, codeUnauthorized},
		{errExpiredSession, 401, codeSessionExpired},
		{errAdmin, 401, codeUnauthorized},
		{errShop, 401, codeUnauthorized},
		{actors.ErrOverloaded, 429, codeOverloaded},
		{errAdmission, 429, codeOverloaded},
		{actors.ErrTimeout, 503, codeOverloaded},
		{actors.ErrStopped, 503, codeOverloaded},
		{fmt.Errorf("shard 02: %w", actors.ErrUnavailable), 503, codeUnavailable},
		{actors.ErrUnknownSKU, 404, codeUnknownSKU},
		{fmt.Errorf("x: %w", actors.ErrStore), 500, codeInternal},
		{client.ErrInvalidCode, 401, codeInvalidCode},
		{client.ErrCodeUsed, 401, codeInvalidCode},
		{client.ErrLoginRateLimited, 429, codeOverloaded},
		{client.ErrHighRisk, 403, codeLoginBlocked},
		{client.ErrLoginBusy, 503, codeUpstream},
		{fmt.Errorf("refund.abnormal: %w", client.ErrV2Unsupported), 501, codeNotInAPIv2},
		{&wxpay.APIError{Status: 403, Code: "NO_AUTH"}, 502, "NO_AUTH"},
		{&wxpay.APIError{Status: 429, Code: wxpay.CodeFrequencyLimited}, 429, codeBudget},
		{fmt.Errorf("%w: %w", client.ErrUnsignedResponse, &wxpay.APIError{Status: 403, Code: "NO_AUTH"}), 502, codeUpstream},
		{client.ErrTimeout, 502, codeUpstream},
		{errors.New("anything else"), 500, codeInternal},
	}
	for _, tc := range cases {
		a := apiAnswer(tc.err)
		if a.status != tc.status || a.code != tc.code {
			t.Errorf("%v: got %d %s, want %d %s", tc.err, a.status, a.code, tc.status, tc.code)
		}
	}
	notify := []struct {
		err    error
		status int
	}{
		{wxpay.ErrBadSignature, 401}, {wxpay.ErrExpired, 401}, {wxpay.ErrUnknownSerial, 401}, {wxpay.ErrMissingHeader, 401},
		{wxpay.ErrDecrypt, 400}, {wxpay.ErrUnsupportedAlgorithm, 400}, {wxpay.ErrMalformed, 400}, {errTooLarge, 413},
		{errUnknownOrder, 404}, {errMismatch, 400}, {actors.ErrOverloaded, 503}, {errAdmission, 503},
		{actors.ErrTimeout, 503}, {fmt.Errorf("%w", actors.ErrStore), 500},
		{fmt.Errorf("shard 02: %w", actors.ErrUnavailable), 503},
	}
	for _, tc := range notify {
		if st, _ := notifyAnswer(tc.err); st != tc.status {
			t.Errorf("notify %v: got %d, want %d", tc.err, st, tc.status)
		}
	}
}
