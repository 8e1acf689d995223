package wxpay

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

func TestV2ParseNoticePayments(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K6Key)
	const appID, mchID = "wxd930ea5d5a258f4f", "10000100"
	paid := map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": appID, "mch_id": mchID, "nonce_str": "n0nce",
		"openid": "oUpF8uMEb4qRXf22hE3X68TekukE", "trade_type": "JSAPI", "bank_type": "CMC", "total_fee": "1999",
		"cash_fee": "1999", "transaction_id": "4200000000202611230001", "out_trade_no": "01ORDER000001",
		"time_end": "20261123130000",
	}
	doc := func(p map[string]string, mod func(map[string]string)) []byte {
		p = maps.Clone(p)
		if mod != nil {
			mod(p)
		}
		return AppendV2XML(nil, v2Signed(t, k, p, V2SignMD5))
	}

	t.Run("the fixture becomes a payment in the APIv3 model", func(t *testing.T) {
		n, err := k.ParseNotice(NoticePayment, v2ReadFile(t, "notify_pay_md5.xml"))
		if err != nil {
			t.Fatal(err)
		}
		want := Notice{Kind: NoticePayment, ID: "v2:1004400740201409030005092168", Payment: Transaction{
			AppID: appID, MchID: mchID, OutTradeNo: "1409811653", TransactionID: "1004400740201409030005092168",
			TradeType: "JSAPI", TradeState: TradeStateSuccess, BankType: "CFT", Attach: "支付测试",
			SuccessTime: "2014-09-03T13:15:40+08:00", Payer: Payer{OpenID: "oUpF8uMEb4qRXf22hE3X68TekukE"},
			Amount: TransactionAmount{Total: 101, PayerTotal: 1, Currency: "CNY"},
		}}
		if n != want {
			t.Fatalf("notice\n got %+v\nwant %+v", n, want)
		}
	})
	t.Run("the HMAC-SHA256 fixture verifies by its sign_type", func(t *testing.T) {
		if n, err := k.ParseNotice(NoticePayment, v2ReadFile(t, "notify_pay_hmac.xml")); err != nil || n.Kind != NoticePayment {
			t.Fatalf("got %+v, %v", n, err)
		}
	})
	t.Run("an absent fee_type is CNY, a present one is kept", func(t *testing.T) {
		n, err := k.ParseNotice(NoticePayment, doc(paid, nil))
		if err != nil || n.Payment.Amount.Currency != "CNY" || n.Payment.Amount.Total != 1999 || n.OutTradeNo() != "01ORDER000001" {
			t.Fatalf("got %+v, %v", n, err)
		}
		n, err = k.ParseNotice(NoticePayment, doc(paid, func(p map[string]string) { p["fee_type"] = "USD" }))
		if err != nil || n.Payment.Amount.Currency != "USD" {
			t.Fatalf("got %+v, %v", n, err)
		}
	})
	t.Run("a failed payment carries nothing to apply", func(t *testing.T) {
		failed := doc(paid, func(p map[string]string) {
			p["result_code"], p["err_code"] = "FAIL", "NOTENOUGH"
			delete(p, "transaction_id")
		})
		if n, err := k.ParseNotice(NoticePayment, failed); err != nil || n != (Notice{Kind: NoticeOther}) {
			t.Fatalf("got %+v, %v", n, err)
		}
	})

	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"a tampered amount fails the sign", bytes.Replace(doc(paid, nil), []byte("1999"), []byte("0001"), 1), ErrV2BadSign},
		{"an unsigned document fails", AppendV2XML(nil, paid), ErrV2MissingSign},
		{"a refund notification is not a payment", v2ReadFile(t, "notify_refund.xml"), ErrV2MissingSign},
		{"a signed document without its amount fails", doc(paid, func(p map[string]string) { delete(p, "total_fee") }), ErrMissingField},
		{"a signed document with a bad time_end fails", doc(paid, func(p map[string]string) { p["time_end"] = "2026-11-23" }), ErrMalformed},
		{"a body that is not XML fails", []byte(`{"json":true}`), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := k.ParseNotice(NoticePayment, tc.body)
			if !errors.Is(err, tc.want) || n != (Notice{}) {
				t.Fatalf("got %+v, %v; want %v", n, err, tc.want)
			}
		})
	}
	t.Run("a route is a payment or a refund", func(t *testing.T) {
		if _, err := k.ParseNotice(NoticeOther, doc(paid, nil)); !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
	})
}

func TestV2ParseNoticeRefunds(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K8Key)
	const appID, mchID = "wx2421b1c4370ec43b", "10000100"
	outer := func(reqInfo string, mod func(map[string]string)) []byte {
		p := map[string]string{"return_code": "SUCCESS", "appid": appID, "mch_id": mchID, "nonce_str": "x", "req_info": reqInfo}
		if mod != nil {
			mod(p)
		}
		return AppendV2XML(nil, p)
	}
	reqInfo := func(status string) string {
		plain := "<root><out_refund_no>R1</out_refund_no><out_trade_no>01ORDER000001</out_trade_no><refund_fee>500</refund_fee>" +
			"<refund_id>50000000000000000001</refund_id><refund_status>" + status + "</refund_status><total_fee>1999</total_fee>" +
			"<transaction_id>4200000000202611230001</transaction_id><refund_recv_accout>招商银行信用卡0403</refund_recv_accout></root>"
		ri, err := k.EncryptReqInfo([]byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return ri
	}

	t.Run("the fixture becomes a refund in the APIv3 model", func(t *testing.T) {
		n, err := k.ParseNotice(NoticeRefund, v2ReadFile(t, "notify_refund.xml"))
		if err != nil {
			t.Fatal(err)
		}
		want := Notice{Kind: NoticeRefund, ID: "v2r:50000404922017112502468056157", Refund: RefundNotice{
			AppID: appID, MchID: mchID, OutTradeNo: "4893e76d8c8b434cb64e9cd536338e33", TransactionID: "4200000015201711256947025404",
			OutRefundNo: "50fd012ed1b311e7af7800163e32c503", RefundID: "50000404922017112502468056157",
			RefundStatus: RefundStatusSuccess, SuccessTime: "2017-11-25T15:36:17+08:00", UserReceivedAccount: "支付用户零钱",
			Amount: RefundNoticeAmount{Total: 6, Refund: 6},
		}}
		if n != want {
			t.Fatalf("notice\n got %+v\nwant %+v", n, want)
		}
	})
	for status, want := range map[string]string{
		"SUCCESS": RefundStatusSuccess, "CHANGE": RefundStatusAbnormal, "REFUNDCLOSE": RefundStatusClosed,
	} {
		t.Run("refund_status "+status+" is spelt "+want, func(t *testing.T) {
			n, err := k.ParseNotice(NoticeRefund, outer(reqInfo(status), nil))
			if err != nil || n.Refund.RefundStatus != want || n.Refund.Amount != (RefundNoticeAmount{Total: 1999, Refund: 500}) ||
				n.Refund.SuccessTime != "" || n.OutTradeNo() != "01ORDER000001" {
				t.Fatalf("got %+v, %v", n, err)
			}
		})
	}
	t.Run("a return_code FAIL carries nothing to apply", func(t *testing.T) {
		body := AppendV2XML(nil, map[string]string{"return_code": "FAIL", "return_msg": "系统繁忙"})
		if n, err := k.ParseNotice(NoticeRefund, body); err != nil || n != (Notice{Kind: NoticeOther}) {
			t.Fatalf("got %+v, %v", n, err)
		}
	})

	other, _ := NewV2Key([]byte("another-apiv2-key-0123456789abcd"))
	foreign, _ := other.EncryptReqInfo([]byte("<root><refund_status>SUCCESS</refund_status></root>"))
	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"a req_info under another key is refused", outer(foreign, nil), ErrV2ReqInfo},
		{"a payment notification is not a refund", v2ReadFile(t, "notify_pay_md5.xml"), ErrMissingField},
		{"a document without return_code is refused", outer(reqInfo("SUCCESS"), func(p map[string]string) { delete(p, "return_code") }), ErrMissingField},
	}
	// Another merchant's appid and mch_id are carried for the order to
	// refuse (actors' otherMerchant), as a payment's are.
	n, err := k.ParseNotice(NoticeRefund, outer(reqInfo("SUCCESS"), func(p map[string]string) {
		p["appid"], p["mch_id"] = "wx0000000000000000", "1111111111"
	}))
	if err != nil || n.Refund.AppID != "wx0000000000000000" || n.Refund.MchID != "1111111111" {
		t.Fatalf("another merchant's refund notification: %+v, %v", n.Refund, err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := k.ParseNotice(NoticeRefund, tc.body)
			if !errors.Is(err, tc.want) || n != (Notice{}) {
				t.Fatalf("got %+v, %v; want %v", n, err, tc.want)
			}
		})
	}
}

// FuzzV2Notice feeds arbitrary bodies to both APIv2 routes: they must never
// panic, and a payment or a refund comes out only whole (ids, a positive
// amount).
func FuzzV2Notice(f *testing.F) {
	k6, k8 := v2MustKey(f, v2K6Key), v2MustKey(f, v2K8Key)
	f.Add(v2ReadFile(f, "notify_pay_md5.xml"))
	f.Add(v2ReadFile(f, "notify_pay_hmac.xml"))
	f.Add(v2ReadFile(f, "notify_refund.xml"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if n, err := k6.ParseNotice(NoticePayment, body); err == nil && n.Kind == NoticePayment &&
			(n.Payment.TransactionID == "" || n.Payment.OutTradeNo == "" || n.Payment.Amount.Total <= 0 || n.ID == "") {
			t.Fatalf("a partial payment: %+v", n)
		}
		if n, err := k8.ParseNotice(NoticeRefund, body); err == nil && n.Kind == NoticeRefund &&
			(n.Refund.RefundID == "" || n.Refund.OutTradeNo == "" || n.Refund.Amount.Refund <= 0 || n.ID == "") {
			t.Fatalf("a partial refund: %+v", n)
		}
	})
}
