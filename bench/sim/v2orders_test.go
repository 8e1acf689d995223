package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
	wxclient "github.com/wxpayd/wxpayd/wxpay/client"
)

// v2Notices is a merchant's APIv2 notification endpoint: payments at
// /pay, refunds at /refund, each checked by wxpay as wxpayd checks them.
type v2Notices struct {
	url string
	ch  chan wxpay.Notice
}

func newV2Notices(t *testing.T, id *Identity) *v2Notices {
	t.Helper()
	key, err := wxpay.NewV2Key(id.APIv2Key)
	if err != nil {
		t.Fatal(err)
	}
	n := &v2Notices{ch: make(chan wxpay.Notice, 64)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		route := wxpay.NoticePayment
		if r.URL.Path == "/refund" {
			route = wxpay.NoticeRefund
		}
		nt, err := key.ParseNotice(route, body)
		if err != nil {
			w.WriteHeader(400)
			w.Write(wxpay.V2NotifyFailReply(err.Error()))
			return
		}
		io.WriteString(w, wxpay.V2NotifySuccessReply)
		n.ch <- nt
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	n.url = "http://" + ln.Addr().String()
	return n
}

func (n *v2Notices) next(t *testing.T) wxpay.Notice {
	t.Helper()
	select {
	case nt := <-n.ch:
		return nt
	case <-time.After(10 * time.Second):
		t.Fatal("no APIv2 notification within 10 s")
		return wxpay.Notice{}
	}
}

// v2Client is wxpayd's APIv2 client for ts, with the merchant's API
// certificate for /secapi/ when cert is true.
func v2Client(t *testing.T, ts *testSim, st wxpay.V2SignType, refundURL string, cert bool) *wxclient.V2Client {
	t.Helper()
	id := ts.Identity()
	key, _ := wxpay.NewV2Key(id.APIv2Key)
	roots := x509.NewCertPool()
	roots.AddCert(id.CACert)
	cfg := wxclient.V2Config{Config: wxclient.Config{BaseURL: ts.URL(), Timeout: 5 * time.Second},
		SecureBaseURL: ts.TLSURL(), RootCAs: roots, ClientIP: "10.1.2.3", RefundNotifyURL: refundURL}
	if cert {
		cfg.ClientCert = &tls.Certificate{Certificate: [][]byte{id.MerchantCert.Raw}, PrivateKey: id.MerchantKey, Leaf: id.MerchantCert}
	}
	c, err := wxclient.NewV2(cfg, &wxpay.V2Merchant{AppID: id.AppID, MchID: id.MchID, Key: key, SignType: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

func v2Prepay(otn, openid, notify string, total int64) *wxpay.PrepayRequest {
	return &wxpay.PrepayRequest{
		Description: "APIv2 商品", OutTradeNo: otn, NotifyURL: notify, Attach: "sku=tea",
		TimeExpire: time.Now().Add(15 * time.Minute).Format(time.RFC3339),
		Amount:     wxpay.Amount{Total: total, Currency: "CNY"}, Payer: wxpay.Payer{OpenID: openid},
	}
}

// TestV2OrderLifecycle runs wxpayd's APIv2 client against the simulator:
// unifiedorder, orderquery, closeorder, payment with its XML notification,
// refund over client-certificate TLS with its req_info notification, and
// refundquery; each answer in the APIv3 model, each refusal the APIv3 code.
func TestV2OrderLifecycle(t *testing.T) {
	t.Parallel()
	for _, st := range []wxpay.V2SignType{wxpay.V2SignMD5, wxpay.V2SignHMACSHA256} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.Clock = SystemClock; c.RefundDelay = 20 * time.Millisecond })
			n := newV2Notices(t, ts.Identity())
			c := v2Client(t, ts, st, n.url+"/refund", true)
			ctx := context.Background()

			// An order that is closed: query NOTPAY, close, query CLOSED,
			// close again ORDER_CLOSED, prepay again ORDER_CLOSED.
			closed := otn(t, 1) + string(st[:1])
			if _, err := c.Prepay(ctx, v2Prepay(closed, "oV2Buyer", n.url+"/pay", 1999)); err != nil {
				t.Fatal(err)
			}
			if tx, err := c.QueryByOutTradeNo(ctx, closed); err != nil || tx.TradeState != wxpay.TradeStateNotPay || tx.Amount.Total != 1999 {
				t.Fatalf("query: %+v %v", tx, err)
			}
			if err := c.CloseOrder(ctx, closed); err != nil {
				t.Fatal(err)
			}
			if tx, _ := c.QueryByOutTradeNo(ctx, closed); tx.TradeState != wxpay.TradeStateClosed {
				t.Fatalf("after close: %+v", tx)
			}
			wantV2Code(t, c.CloseOrder(ctx, closed), 400, wxpay.CodeOrderClosed, true)
			_, err := c.Prepay(ctx, v2Prepay(closed, "oV2Buyer", n.url+"/pay", 1999))
			wantV2Code(t, err, 400, wxpay.CodeOrderClosed, true)
			_, err = c.QueryByOutTradeNo(ctx, "NOSUCHORDER1")
			wantV2Code(t, err, 404, wxpay.CodeOrderNotExist, true)

			// An order that is paid, then refunded in part.
			paid := otn(t, 2) + string(st[:1])
			pr, err := c.Prepay(ctx, v2Prepay(paid, "oV2Buyer", n.url+"/pay", 1999))
			if err != nil {
				t.Fatal(err)
			}
			if code, txn := ts.c.pay(pr.PrepayID, "oV2Buyer"); code != 201 {
				t.Fatalf("pay: %d %s", code, txn)
			}
			nt := n.next(t)
			if nt.Kind != wxpay.NoticePayment || nt.Payment.OutTradeNo != paid || nt.Payment.Amount.Total != 1999 || nt.Payment.Attach != "sku=tea" {
				t.Fatalf("payment notice %+v", nt)
			}
			tx, err := c.QueryByOutTradeNo(ctx, paid)
			if err != nil || tx.TradeState != wxpay.TradeStateSuccess || tx.TransactionID != nt.Payment.TransactionID ||
				tx.Payer.OpenID != "oV2Buyer" || tx.SuccessTime == "" || tx.AppID != ts.Identity().AppID {
				t.Fatalf("query paid: %+v %v", tx, err)
			}
			wantV2Code(t, c.CloseOrder(ctx, paid), 400, wxpay.CodeOrderPaid, true)
			req := &wxpay.RefundRequest{OutTradeNo: paid, OutRefundNo: paid + "-R1", Reason: "退货",
				NotifyURL: "http://ignored.invalid/x", Amount: wxpay.RefundAmount{Refund: 500, Total: 1999}}
			rf, err := c.CreateRefund(ctx, req)
			if err != nil || rf.Status != wxpay.RefundStatusProcessing || rf.RefundID == "" || rf.Amount.Refund != 500 {
				t.Fatalf("refund: %+v %v", rf, err)
			}
			again, err := c.CreateRefund(ctx, req)
			if err != nil || again.RefundID != rf.RefundID {
				t.Fatalf("the same out_refund_no again: %+v %v", again, err)
			}
			over := *req
			over.OutRefundNo, over.Amount.Refund = paid+"-R2", 1999
			_, err = c.CreateRefund(ctx, &over)
			wantV2Code(t, err, 403, wxpay.CodeNotEnough, true)
			rn := n.next(t)
			if rn.Kind != wxpay.NoticeRefund || rn.Refund.OutRefundNo != req.OutRefundNo || rn.Refund.RefundStatus != wxpay.RefundStatusSuccess ||
				rn.Refund.Amount.Refund != 500 || rn.Refund.RefundID != rf.RefundID {
				t.Fatalf("refund notice %+v", rn)
			}
			q, err := c.QueryRefund(ctx, req.OutRefundNo)
			if err != nil || q.Status != wxpay.RefundStatusSuccess || q.RefundID != rf.RefundID || q.SuccessTime == "" || q.Amount.Refund != 500 {
				t.Fatalf("refund query: %+v %v", q, err)
			}
			_, err = c.QueryRefund(ctx, "NO-SUCH-REFUND")
			wantV2Code(t, err, 404, wxpay.CodeResourceNotExists, true)
			if tx, _ := c.QueryByOutTradeNo(ctx, paid); tx.TradeState != wxpay.TradeStateRefund {
				t.Fatalf("after refund: %+v", tx)
			}

			// The ledger counts every APIv2 call on its order.
			l := ts.c.ledgerOrder(paid)
			if l.TradeState != wxpay.TradeStateRefund || l.Refunded != 500 || l.Calls.Refund != 3 || l.Calls.Query != 2 ||
				l.Calls.Close != 1 || l.Calls.RefundQuery != 1 || len(l.Refunds) != 1 || l.Refunds[0].Status != wxpay.RefundStatusSuccess {
				t.Fatalf("ledger %+v", l)
			}
		})
	}
}

func wantV2Code(t *testing.T, err error, status int, code string, definitive bool) {
	t.Helper()
	var e *wxpay.APIError
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("got %v, want %d %s", err, status, code)
	}
	if _, def := wxclient.Outcome(err); def != definitive {
		t.Fatalf("%v: definitive %v, want %v", err, def, definitive)
	}
}

// TestV2SecureRefundNeedsTheMerchantCertificate: /secapi/pay/refund answers
// only over TLS with the merchant's certificate; the plain listener and a
// certificate the CA did not issue are refused.
func TestV2SecureRefundNeedsTheMerchantCertificate(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.Clock = SystemClock })
	id := ts.Identity()
	// The plain listener: return_code FAIL, in APIv2's XML.
	resp, err := http.Post(ts.URL()+"/secapi/pay/refund", "text/xml", strings.NewReader("<xml></xml>"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if p, _ := wxpay.ParseV2XML(b); resp.StatusCode != 200 || p["return_code"] != "FAIL" {
		t.Fatalf("plain /secapi/: %d %s", resp.StatusCode, b)
	}
	// No client certificate: the TLS handshake fails.
	roots := x509.NewCertPool()
	roots.AddCert(id.CACert)
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if _, err := noCert.Post(ts.TLSURL()+"/secapi/pay/refund", "text/xml", strings.NewReader("<xml></xml>")); err == nil {
		t.Fatal("a TLS connection without a client certificate was accepted")
	}
	// A self-signed certificate for the merchant's key: not the CA's.
	self, err := issue(id.MerchantKey, nil, &id.MerchantKey.PublicKey, &x509.Certificate{Subject: id.MerchantCert.Subject}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	selfCert := tls.Certificate{Certificate: [][]byte{self.Raw}, PrivateKey: id.MerchantKey}
	forged := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{selfCert}}}}
	if _, err := forged.Post(ts.TLSURL()+"/secapi/pay/refund", "text/xml", strings.NewReader("<xml></xml>")); err == nil {
		t.Fatal("a certificate the CA did not issue was accepted")
	}
	// Without a certificate the client refuses before sending.
	c := v2Client(t, ts, wxpay.V2SignMD5, "", false)
	_, err = c.CreateRefund(context.Background(), &wxpay.RefundRequest{OutTradeNo: "ABCDEF1", OutRefundNo: "R1",
		Amount: wxpay.RefundAmount{Refund: 1, Total: 1}})
	if code, def := wxclient.Outcome(err); !errors.Is(err, wxclient.ErrInvalidRequest) || code != wxclient.OutcomeNotSent || !def {
		t.Fatalf("refund without a certificate: %v", err)
	}
	// An unknown APIv2 path answers return_code FAIL: a definitive refusal.
	resp, err = http.Post(ts.URL()+"/pay/nosuch", "text/xml", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if p, _ := wxpay.ParseV2XML(b); p["return_code"] != "FAIL" || p["return_msg"] == "" {
		t.Fatalf("unknown path: %s", b)
	}
}

// TestV2Faults: the APIv2 endpoints take the fault flags of their APIv3
// counterparts, and each fault reaches wxpayd's client as the outcome the
// actors' rules expect.
func TestV2Faults(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.Clock = SystemClock; c.SlowDelay = time.Millisecond })
	c := v2Client(t, ts, wxpay.V2SignMD5, "", true)
	ctx := context.Background()
	o := otn(t, 9)
	if _, err := c.Prepay(ctx, v2Prepay(o, "oF", "http://127.0.0.1:1/pay", 100)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec       string
		code       string
		definitive bool
	}{
		{"query.system_error=1", wxpay.CodeSystemError, false},
		{"query.rate_limited=1", wxpay.CodeFrequencyLimited, true}, // 429: definitive, and retried by the actors
		{"query.bad_gateway=1", "HTTP_502", false},
	} {
		if err := ts.SetFaults(tc.spec); err != nil {
			t.Fatal(err)
		}
		_, err := c.QueryByOutTradeNo(ctx, o)
		if code, def := wxclient.Outcome(err); code != tc.code || def != tc.definitive {
			t.Fatalf("%s: %v → %s %v", tc.spec, err, code, def)
		}
	}
	// close.lost: the order closes, the answer is lost or SYSTEMERROR.
	if err := ts.SetFaults("close.lost=1"); err != nil {
		t.Fatal(err)
	}
	if _, def := wxclient.Outcome(c.CloseOrder(ctx, o)); def {
		t.Fatal("a lost close answered definitively")
	}
	ts.SetFaults("")
	if tx, err := c.QueryByOutTradeNo(ctx, o); err != nil || tx.TradeState != wxpay.TradeStateClosed {
		t.Fatalf("after a lost close: %+v %v", tx, err)
	}
	st := ts.Stats()
	if st.APIFaults["query.system_error"] != 1 || st.APIFaults["close.lost"] != 1 || st.Requests["v2_orderquery"] < 4 {
		t.Fatalf("stats: faults %v requests %v", st.APIFaults, st.Requests)
	}
}

// TestV2RefundNotificationRetried: an APIv2 refund notification that is
// not acknowledged with WeChat's SUCCESS XML is retried on WeChat's
// schedule; its tampered copy no longer decrypts.
func TestV2RefundNotificationRetried(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) {
		c.Clock = SystemClock
		c.RefundDelay = 10 * time.Millisecond
		c.NotifySpeedup = 1000 // 15 s → 15 ms
	})
	id := ts.Identity()
	key, _ := wxpay.NewV2Key(id.APIv2Key)
	var attempts int // deliveries of one notification are sequential
	done := make(chan struct{}, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/refund" {
			io.WriteString(w, wxpay.V2NotifySuccessReply)
			return
		}
		if _, err := key.ParseNotice(wxpay.NoticeRefund, body); err != nil {
			w.WriteHeader(400)
			return
		}
		attempts++
		if attempts < 3 { // 200 with FAIL is not an acknowledgement
			w.Write(wxpay.V2NotifyFailReply("busy"))
			return
		}
		io.WriteString(w, wxpay.V2NotifySuccessReply)
		done <- struct{}{}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String()
	c := v2Client(t, ts, wxpay.V2SignMD5, url+"/refund", true)
	ctx := context.Background()
	o := otn(t, 7)
	pr, err := c.Prepay(ctx, v2Prepay(o, "oRetry", url+"/pay", 300))
	if err != nil {
		t.Fatal(err)
	}
	if code, txn := ts.c.pay(pr.PrepayID, "oRetry"); code != 201 {
		t.Fatalf("pay: %d %s", code, txn)
	}
	if _, err := c.CreateRefund(ctx, &wxpay.RefundRequest{OutTradeNo: o, OutRefundNo: o + "-R", Amount: wxpay.RefundAmount{Refund: 300, Total: 300}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the refund notification was not retried to an acknowledgement")
	}
	eventually(t, "the third attempt recorded as acknowledged", func() bool {
		var v OrderView
		if st := ts.c.simGet("/sim/v1/orders/"+o, &v); st != 200 {
			t.Fatalf("order view: %d", st)
		}
		for _, n := range v.Notifications {
			if n.Kind == "genuine" && strings.HasPrefix(n.EventType, "APIV2.REFUND") {
				return len(n.Attempts) == 3 && n.Acknowledged
			}
		}
		return false
	})
	// A tampered copy, as the simulator makes it, fails req_info.
	body := wxpay.AppendV2XML(nil, map[string]string{"return_code": "SUCCESS", "appid": id.AppID, "mch_id": id.MchID, "nonce_str": "n",
		"req_info": mustReqInfo(t, key, o)})
	if _, err := key.ParseNotice(wxpay.NoticeRefund, v2Tamper(body)); !errors.Is(err, wxpay.ErrV2ReqInfo) {
		t.Fatalf("tampered refund notification: %v", err)
	}
}

func mustReqInfo(t *testing.T, key *wxpay.V2Key, otn string) string {
	t.Helper()
	ri, err := key.EncryptReqInfo([]byte("<root><out_refund_no>R</out_refund_no><out_trade_no>" + otn +
		"</out_trade_no><refund_id>1</refund_id><refund_status>SUCCESS</refund_status><transaction_id>4</transaction_id>" +
		"<refund_fee>1</refund_fee><total_fee>1</total_fee></root>"))
	if err != nil {
		t.Fatal(err)
	}
	return ri
}
