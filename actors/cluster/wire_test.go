package cluster

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

func TestOrderMessagesSurviveTheEnvelope(t *testing.T) {
	t.Parallel()
	msgs := []actors.OrderMessage{
		&actors.Prepay{OutTradeNo: "02abc", OpenID: "o", SKU: "s", Quantity: 2, IdemKey: "k", Fast: true},
		&actors.Get{OutTradeNo: "02abc"},
		&actors.PaymentNotified{NotifyID: "n1", Tx: wxpay.Transaction{OutTradeNo: "02abc", TradeState: "SUCCESS", Amount: wxpay.TransactionAmount{Total: 200}}},
		&actors.RefundNotified{NotifyID: "n2", Notice: wxpay.RefundNotice{OutTradeNo: "02abc", OutRefundNo: "02abc-R1"}},
		&actors.StartRefund{OutTradeNo: "02abc", OutRefundNo: "02abc-R1", Amount: 100},
		&actors.Reconcile{OutTradeNo: "02abc", Reason: "paid at wechat"},
		&actors.ApplyAbnormalRefund{OutTradeNo: "02abc", Request: wxpay.AbnormalRefundRequest{OutRefundNo: "02abc-R1", Type: "MERCHANT_BANK_CARD"}},
	}
	for _, m := range msgs {
		e, err := encodeOrder(m)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(e)
		var back envelope
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		got, err := decodeOrder(back)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%T: got %+v (%v), want %+v", m, got, err, m)
		}
		if orderKey(got) != "02abc" {
			t.Errorf("%T: key %q", m, orderKey(got))
		}
	}
	if _, err := encodeOrder(&actors.Tick{OutTradeNo: "02abc"}); err == nil {
		t.Error("a timer tick must not cross nodes")
	}
}

func TestErrorsCrossTheWireAsSentinels(t *testing.T) {
	t.Parallel()
	for _, c := range errCodes {
		a := replyAnswer(actors.Reply{}, c.err)
		b, _ := json.Marshal(a)
		var back answer
		_ = json.Unmarshal(b, &back)
		if _, err := back.reply("02"); !errors.Is(err, c.err) {
			t.Errorf("%v came back as %v", c.err, err)
		}
	}
	a := replyAnswer(actors.Reply{Status: actors.StatusOK, Exists: true, Order: store.Order{OutTradeNo: "02x", State: store.StatePaid}}, nil)
	if r, err := a.reply("02"); err != nil || r.Order.State != store.StatePaid || !r.Exists {
		t.Errorf("reply: %+v %v", r, err)
	}
}

func TestSKUOwnersSpreadAndAgree(t *testing.T) {
	t.Parallel()
	n := &Node{cfg: Config{Shards: []string{"01", "02", "03"}}}
	m := &Node{cfg: Config{Shards: []string{"03", "01", "02"}}}
	count := map[string]int{}
	for i := 0; i < 300; i++ {
		sku := "sku-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if n.OwnerOf(sku) != m.OwnerOf(sku) {
			t.Fatalf("%s: owners differ with the list's order", sku)
		}
		count[n.OwnerOf(sku)]++
	}
	for _, s := range []string{"01", "02", "03"} {
		if count[s] < 50 {
			t.Errorf("shard %s owns %d of 300 SKUs", s, count[s])
		}
	}
}
