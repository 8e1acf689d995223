package ingress

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/wxpay"
)

func (s *stack) postXML(path string, body []byte) (int, string) {
	s.t.Helper()
	resp, err := s.http.Post(s.url+path, "text/xml", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestV2Notifications(t *testing.T) {
	// WeChat's v3 deliveries go nowhere: the APIv2 notices below are what
	// move the order.
	s := newStack(t, stackOpts{deadNotifyURL: true})
	s.putSKU("v2", 3)
	tok := s.loginAs("heidi")
	st, c, b := s.order(tok, "v2")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	key, err := wxpay.NewV2Key(s.id.APIv2Key)
	if err != nil {
		t.Fatal(err)
	}
	pay := map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": s.id.AppID, "mch_id": s.id.MchID,
		"nonce_str": "n0nce", "openid": s.openid(tok), "trade_type": "JSAPI", "bank_type": "CMC",
		"total_fee": "1999", "cash_fee": "1999", "fee_type": "CNY", "transaction_id": "4200000000202611230001",
		"out_trade_no": c.OutTradeNo, "time_end": time.Now().Format("20060102150405"),
	}
	signed := func(p map[string]string) []byte {
		q := map[string]string{}
		for k, v := range p {
			q[k] = v
		}
		sig, err := key.Sign(q, wxpay.V2SignMD5)
		if err != nil {
			t.Fatal(err)
		}
		q["sign"] = sig
		return wxpay.AppendV2XML(nil, q)
	}
	// A tampered amount fails the sign: FAIL XML, nothing changes.
	body := signed(pay)
	forged := bytes.Replace(body, []byte("1999"), []byte("0001"), 1)
	if st, reply := s.postXML("/wxpay/v2/notify", forged); st != 401 || !strings.Contains(reply, "FAIL") {
		t.Fatalf("forged: %d %s", st, reply)
	}
	if s.get(tok, c.OutTradeNo).State != "PREPAID" {
		t.Fatal("a forged v2 notification moved the order")
	}
	// The genuine one pays, exactly once, and is answered with WeChat's
	// exact success XML each time.
	for i := 0; i < 2; i++ {
		if st, reply := s.postXML("/wxpay/v2/notify", body); st != 200 || reply != wxpay.V2NotifySuccessReply {
			t.Fatalf("genuine #%d: %d %s", i+1, st, reply)
		}
	}
	if s.get(tok, c.OutTradeNo).State != "PAID" {
		t.Fatal("not paid")
	}
	types := map[string]int{}
	for _, e := range s.history(c.OutTradeNo) {
		types[e.Type]++
	}
	if types[event.OrderPaid] != 1 || types[event.NotifyDuplicate] != 1 {
		t.Fatalf("events %v", types)
	}
	// A mismatching amount, correctly signed: a mismatch, not a payment.
	other := map[string]string{}
	for k, v := range pay {
		other[k] = v
	}
	other["total_fee"], other["cash_fee"] = "1", "1"
	if st, reply := s.postXML("/wxpay/v2/notify", signed(other)); st != 400 || !strings.Contains(reply, "FAIL") {
		t.Fatalf("mismatch: %d %s", st, reply)
	}

	// Refund: started by the admin, completed by an APIv2 refund notice.
	st, b2, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 500})
	if st != 200 {
		t.Fatalf("refund: %d %s", st, b2)
	}
	outRefundNo := c.OutTradeNo + "-R1"
	plain := "<root><out_refund_no><![CDATA[" + outRefundNo + "]]></out_refund_no><out_trade_no><![CDATA[" + c.OutTradeNo +
		"]]></out_trade_no><refund_fee><![CDATA[500]]></refund_fee><refund_id><![CDATA[50000000" + strconv.Itoa(int(time.Now().Unix())) +
		"]]></refund_id><refund_status><![CDATA[SUCCESS]]></refund_status><total_fee><![CDATA[1999]]></total_fee><transaction_id><![CDATA[4200000000202611230001]]></transaction_id>" +
		"<success_time><![CDATA[2026-11-23 13:00:00]]></success_time></root>"
	reqInfo, err := key.EncryptReqInfo([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	refund := wxpay.AppendV2XML(nil, map[string]string{"return_code": "SUCCESS", "appid": s.id.AppID, "mch_id": s.id.MchID, "nonce_str": "x", "req_info": reqInfo})
	eventually(t, "the v2 refund notice completes the refund", func() bool {
		st, reply := s.postXML("/wxpay/v2/refund-notify", refund)
		if st != 200 || reply != wxpay.V2NotifySuccessReply {
			t.Logf("refund notify: %d %s", st, reply)
		}
		g := s.get(tok, c.OutTradeNo)
		return g.State == "REFUNDED" && g.Refunded == 500
	})
	// A req_info under another key is rejected.
	badKey, _ := wxpay.NewV2Key([]byte("another-apiv2-key-0123456789abcd"))
	bad, _ := badKey.EncryptReqInfo([]byte(plain))
	badDoc := wxpay.AppendV2XML(nil, map[string]string{"return_code": "SUCCESS", "appid": s.id.AppID, "mch_id": s.id.MchID, "nonce_str": "x", "req_info": bad})
	if st, reply := s.postXML("/wxpay/v2/refund-notify", badDoc); st != 400 || !strings.Contains(reply, "FAIL") {
		t.Fatalf("bad req_info: %d %s", st, reply)
	}
	// A genuine req_info under an outer document naming another appid is
	// refused; a refund notification whose return_code is FAIL carries
	// nothing and is acknowledged.
	foreign := wxpay.AppendV2XML(nil, map[string]string{"return_code": "SUCCESS", "appid": "wx0000000000000000", "mch_id": s.id.MchID, "nonce_str": "x", "req_info": reqInfo})
	if st, reply := s.postXML("/wxpay/v2/refund-notify", foreign); st != 400 || !strings.Contains(reply, "FAIL") {
		t.Fatalf("another appid: %d %s", st, reply)
	}
	failed := wxpay.AppendV2XML(nil, map[string]string{"return_code": "FAIL", "return_msg": "系统繁忙"})
	if st, reply := s.postXML("/wxpay/v2/refund-notify", failed); st != 200 || reply != wxpay.V2NotifySuccessReply {
		t.Fatalf("return_code FAIL: %d %s", st, reply)
	}
	// The same for a payment that failed: signed, acknowledged, nothing moves.
	unpaid := map[string]string{"return_code": "SUCCESS", "result_code": "FAIL", "err_code": "NOTENOUGH", "appid": s.id.AppID,
		"mch_id": s.id.MchID, "nonce_str": "n1", "out_trade_no": c.OutTradeNo}
	if st, reply := s.postXML("/wxpay/v2/notify", signed(unpaid)); st != 200 || reply != wxpay.V2NotifySuccessReply {
		t.Fatalf("failed payment: %d %s", st, reply)
	}
	if g := s.get(tok, c.OutTradeNo); g.State != "REFUNDED" {
		t.Fatalf("state %s", g.State)
	}
}
