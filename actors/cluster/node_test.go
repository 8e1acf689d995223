//go:build !race

// The race detector stays off for this file: protoactor's remote, at the
// pinned version, reads its endpoint manager's stopped flag without a lock
// (endpointManager.removeEndpoint, on a lost peer's reconnect failing)
// while Shutdown writes it (endpointManager.stop), so any node that shuts
// down after a peer has gone is reported, whatever wxpayd does. make test
// runs this file without -race.

package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// heldWeChat holds every prepay until release is closed; its other calls
// answer at once.
type heldWeChat struct {
	entered chan string
	release chan struct{}
}

func (w *heldWeChat) Prepay(ctx context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error) {
	w.entered <- req.OutTradeNo
	select {
	case <-w.release:
		return wxpay.PrepayResponse{PrepayID: "wx-" + req.OutTradeNo}, nil
	case <-ctx.Done():
		return wxpay.PrepayResponse{}, ctx.Err()
	}
}

func (w *heldWeChat) QueryByOutTradeNo(context.Context, string) (wxpay.Transaction, error) {
	return wxpay.Transaction{TradeState: wxpay.TradeStateNotPay}, nil
}
func (w *heldWeChat) CloseOrder(context.Context, string) error { return nil }
func (w *heldWeChat) CreateRefund(context.Context, *wxpay.RefundRequest) (wxpay.Refund, error) {
	return wxpay.Refund{}, errors.New("not in this test")
}
func (w *heldWeChat) QueryRefund(context.Context, string) (wxpay.Refund, error) {
	return wxpay.Refund{}, errors.New("not in this test")
}
func (w *heldWeChat) ApplyAbnormalRefund(context.Context, string, *wxpay.AbnormalRefundRequest) (wxpay.Refund, error) {
	return wxpay.Refund{}, errors.New("not in this test")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testNode is one member of an in-process two-node cluster.
type testNode struct {
	*Node
	sys    *actors.System
	stop   context.CancelFunc
	ran    chan error
	wechat *heldWeChat
}

func startCluster(t *testing.T, maxServing int) (a, b *testNode) {
	t.Helper()
	shards := []string{"01", "02"}
	health := []int{freePort(t), freePort(t)}
	members := []string{"127.0.0.1:" + strconv.Itoa(health[0]), "127.0.0.1:" + strconv.Itoa(health[1])}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := make([]*testNode, 2)
	for i, shard := range shards {
		st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		wc := &heldWeChat{entered: make(chan string, 16), release: make(chan struct{})}
		sys, err := actors.New(actors.Config{AppID: "wx-app", MchID: "1900000001", NotifyURL: "https://shop.example/notify",
			PrepayQPS: -1}, st, wc)
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(Config{Listen: "127.0.0.1:" + strconv.Itoa(freePort(t)), HealthPort: health[i], Members: members,
			Shard: shard, Shards: shards, Timeout: 5 * time.Second, Refresh: 100 * time.Millisecond, MaxServing: maxServing,
			Logger: quiet}, sys)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		tn := &testNode{Node: n, sys: sys, stop: cancel, ran: make(chan error, 1), wechat: wc}
		go func() { tn.ran <- sys.Run(ctx) }()
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = tn
		t.Cleanup(func() {
			tn.stop()
			<-tn.ran
			_ = st.Close()
		})
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = n.Close(ctx)
			cancel()
		}
	})
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := n.WaitFor(ctx)
		cancel()
		if err != nil {
			t.Fatalf("cluster did not form: %v (missing %v)", err, n.Missing())
		}
	}
	return nodes[0], nodes[1]
}

// skuOwnedBy returns a SKU name whose owner is shard.
func skuOwnedBy(shard string, shards []string) string {
	for i := 0; ; i++ {
		if s := "tea-" + strconv.Itoa(i); Owner(s, shards) == shard {
			return s
		}
	}
}

// A node serves at most MaxServing requests from other nodes at once: the
// next is refused as overloaded, not queued without bound. Once Close has
// begun a request is refused as stopped and Close still waits for the
// requests it let in.
func TestNodeBoundsTheRequestsItServesAndStopsTakingThem(t *testing.T) {
	a, b := startCluster(t, 1)
	sku := skuOwnedBy("02", []string{"01", "02"})
	if _, err := b.sys.Inventory().Put(context.Background(), store.SKU{SKU: sku, Description: "tea", Price: 100, Stock: 10, PerBuyerLimit: 5}); err != nil {
		t.Fatal(err)
	}
	prepay := func(i int) (actors.Reply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.Request(ctx, &actors.Prepay{OutTradeNo: fmt.Sprintf("02HELD%018d", i), OpenID: "buyer-" + strconv.Itoa(i), SKU: sku, Quantity: 1})
	}
	// The first request holds node b's only slot in WeChat's prepay.
	var wg sync.WaitGroup
	var held actors.Reply
	var heldErr error
	wg.Add(1)
	go func() { defer wg.Done(); held, heldErr = prepay(0) }()
	select {
	case <-b.wechat.entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the first prepay never reached WeChat")
	}
	if _, err := prepay(1); !errors.Is(err, actors.ErrOverloaded) {
		t.Fatalf("a request past MaxServing: %v, want ErrOverloaded", err)
	}
	// Closing b: it stops taking requests, and its Close waits for the
	// one in flight, which then completes.
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- b.Close(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !b.closed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.call(context.Background(), "01", "01x", envelope{}); !errors.Is(err, actors.ErrStopped) {
		t.Fatalf("a request from a closing node: %v, want ErrStopped", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a request still in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(b.wechat.release)
	wg.Wait()
	if heldErr != nil || held.Order.State != store.StatePrepaid {
		t.Fatalf("the request in flight: %+v %v", held.Order, heldErr)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
}
