package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

const (
	testRefundID   = "50000000382019052709732678859"
	testCardNumber = "6225880137001234"
	testCardHolder = "张三"
)

// abnormalRoute answers apply-abnormal-refund as WeChat does: the refund,
// now PROCESSING again. It records the decoded body.
func abnormalRoute(got *wxpay.AbnormalRefundRequest) route {
	return func(r *recorded) (int, []byte, answerOpts) {
		if err := json.Unmarshal(r.body, got); err != nil {
			return 400, []byte(`{"code":"PARAM_ERROR","message":"bad body"}`), answerOpts{}
		}
		return 200, refundJSON(got.OutRefundNo, "PROCESSING"), answerOpts{}
	}
}

func TestApplyAbnormalRefund(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil) // verifies (and encrypts) with key a
	path := pathRefunds + "/" + testRefundID + "/apply-abnormal-refund"

	t.Run("to the buyer's card: bank fields encrypted with the key named in Wechatpay-Serial", func(t *testing.T) {
		var got wxpay.AbnormalRefundRequest
		f.setRoute("POST", path, abnormalRoute(&got))
		req := &wxpay.AbnormalRefundRequest{OutRefundNo: "R-2024|01@a", Type: wxpay.AbnormalRefundUserBankCard,
			BankType: "ICBC_DEBIT", BankAccount: testCardNumber, RealName: testCardHolder}
		before := *req
		refund, err := c.ApplyAbnormalRefund(context.Background(), testRefundID, req)
		if err != nil {
			t.Fatal(err)
		}
		if refund.RefundID != testRefundID || refund.OutRefundNo != "R-2024|01@a" || refund.Status != wxpay.RefundStatusProcessing {
			t.Fatalf("refund %+v", refund)
		}
		if *req != before {
			t.Fatal("ApplyAbnormalRefund modified its request")
		}
		r := f.lastRequest(t)
		if r.authErr != nil || r.uri != path || r.header["Content-Type"] != "application/json" {
			t.Fatalf("%s %v %q", r.uri, r.authErr, r.header["Content-Type"])
		}
		if r.header[wxpay.HeaderSerial] != f.keys.a.serial {
			t.Fatalf("Wechatpay-Serial %q, want %q", r.header[wxpay.HeaderSerial], f.keys.a.serial)
		}
		if strings.Contains(string(r.body), testCardNumber) || strings.Contains(string(r.body), testCardHolder) {
			t.Fatalf("plain bank fields on the wire: %s", r.body)
		}
		if got.OutRefundNo != req.OutRefundNo || got.Type != req.Type || got.BankType != "ICBC_DEBIT" {
			t.Fatalf("body %s", r.body)
		}
		for field, want := range map[string]string{got.BankAccount: testCardNumber, got.RealName: testCardHolder} {
			if plain, err := wxpay.DecryptSensitive(f.keys.a.rsa, field); err != nil || plain != want {
				t.Errorf("a field decrypts to %q (%v), want %q", plain, err, want)
			}
		}
	})

	t.Run("to the merchant's account: no bank fields", func(t *testing.T) {
		var got wxpay.AbnormalRefundRequest
		f.setRoute("POST", path, abnormalRoute(&got))
		_, err := c.ApplyAbnormalRefund(context.Background(), testRefundID,
			&wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: wxpay.AbnormalRefundMerchantBankCard})
		if err != nil {
			t.Fatal(err)
		}
		if r := f.lastRequest(t); string(r.body) != `{"out_refund_no":"R1","type":"MERCHANT_BANK_CARD"}` || r.authErr != nil {
			t.Fatalf("body %s, %v", r.body, r.authErr)
		}
	})

	t.Run("an answer for another refund is refused", func(t *testing.T) {
		f.setRoute("POST", path, func(r *recorded) (int, []byte, answerOpts) {
			return 200, []byte(strings.Replace(string(refundJSON("R1", "PROCESSING")), testRefundID, "50000000000000000000000000001", 1)), answerOpts{}
		})
		_, err := c.ApplyAbnormalRefund(context.Background(), testRefundID,
			&wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: wxpay.AbnormalRefundMerchantBankCard})
		if !errors.Is(err, ErrBadResponse) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("WeChat's refusal is an APIError and definitive", func(t *testing.T) {
		f.setRoute("POST", path, func(*recorded) (int, []byte, answerOpts) {
			return 400, []byte(`{"code":"INVALID_REQUEST","message":"退款单状态不是退款异常"}`), answerOpts{}
		})
		_, err := c.ApplyAbnormalRefund(context.Background(), testRefundID,
			&wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: wxpay.AbnormalRefundUserBankCard,
				BankType: "CMB_DEBIT", BankAccount: testCardNumber, RealName: testCardHolder})
		if code, definitive := Outcome(err); code != wxpay.CodeInvalidRequest || !definitive {
			t.Fatalf("Outcome(%v) = %s, %v", err, code, definitive)
		}
		if strings.Contains(err.Error(), testCardNumber) || strings.Contains(err.Error(), testCardHolder) {
			t.Fatalf("error %q carries bank fields", err)
		}
		f.assertNoSecrets(t, err)
	})

	t.Run("invalid input is refused before sending", func(t *testing.T) {
		card := func(mod func(r *wxpay.AbnormalRefundRequest)) *wxpay.AbnormalRefundRequest {
			r := &wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: wxpay.AbnormalRefundUserBankCard,
				BankType: "ICBC_DEBIT", BankAccount: testCardNumber, RealName: testCardHolder}
			mod(r)
			return r
		}
		merchant := &wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: wxpay.AbnormalRefundMerchantBankCard}
		before := f.hits.Load()
		for name, tc := range map[string]struct {
			refundID string
			req      *wxpay.AbnormalRefundRequest
		}{
			"an empty refund_id":                  {"", merchant},
			"a refund_id of 33 characters":        {strings.Repeat("5", 33), merchant},
			"a refund_id with a slash":            {"5000/../x", merchant},
			"a refund_id with a space":            {"5000 1", merchant},
			"a nil request":                       {testRefundID, nil},
			"a bad out_refund_no":                 {testRefundID, &wxpay.AbnormalRefundRequest{OutRefundNo: "R 1", Type: wxpay.AbnormalRefundMerchantBankCard}},
			"an unknown type":                     {testRefundID, &wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: "BALANCE"}},
			"no type":                             {testRefundID, &wxpay.AbnormalRefundRequest{OutRefundNo: "R1"}},
			"a card without bank_type":            {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.BankType = "" })},
			"a lower-case bank_type":              {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.BankType = "icbc_debit" })},
			"a bank_type over 16 characters":      {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.BankType = "ICBC_DEBIT_CARD_X" })},
			"a card without bank_account":         {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.BankAccount = "" })},
			"a card without real_name":            {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.RealName = "" })},
			"a bank_account with a newline":       {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.BankAccount += "\n" })},
			"a real_name over 128 bytes":          {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.RealName = strings.Repeat("张", 43) })},
			"a real_name that is not UTF-8":       {testRefundID, card(func(r *wxpay.AbnormalRefundRequest) { r.RealName = "\xff" })},
			"bank fields for the merchant's card": {testRefundID, &wxpay.AbnormalRefundRequest{OutRefundNo: "R1", Type: wxpay.AbnormalRefundMerchantBankCard, BankAccount: testCardNumber}},
		} {
			_, err := c.ApplyAbnormalRefund(context.Background(), tc.refundID, tc.req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%s: err = %v", name, err)
				continue
			}
			if strings.Contains(err.Error(), testCardNumber) || strings.Contains(err.Error(), testCardHolder) {
				t.Errorf("%s: error %q carries bank fields", name, err)
			}
			if code, definitive := Outcome(err); code != OutcomeNotSent || !definitive {
				t.Errorf("%s: Outcome = %s, %v", name, code, definitive)
			}
		}
		if f.hits.Load() != before {
			t.Fatal("an invalid request reached the server")
		}
	})

	t.Run("without a WeChat key the bank fields cannot be encrypted: nothing is sent", func(t *testing.T) {
		empty := newTestClient(t, f, Config{}, wxpay.NewKeySet(nil))
		before := f.hits.Load()
		_, err := empty.ApplyAbnormalRefund(context.Background(), testRefundID, &wxpay.AbnormalRefundRequest{OutRefundNo: "R1",
			Type: wxpay.AbnormalRefundUserBankCard, BankType: "ICBC_DEBIT", BankAccount: testCardNumber, RealName: testCardHolder})
		if !errors.Is(err, ErrInvalidRequest) || f.hits.Load() != before {
			t.Fatalf("err = %v, hits %d -> %d", err, before, f.hits.Load())
		}
	})
}
