package actors

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// BenchmarkMemory is the memory bar, run once:
//
//	go test -run '^$' -bench Memory -benchtime 1x ./actors/
//
// It writes 1,000,000 order records (with their events) into a store,
// wakes 100,000 order actors, and reports the process's resident set and
// the heap per live actor; then it lets them passivate and reports the heap
// left per order (a passivated order should cost nothing).
func BenchmarkMemory(b *testing.B) {
	const orders, live = 1_000_000, 100_000
	dir := b.TempDir()
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < orders; i += 5000 {
		w := st.NewWrite()
		for j := i; j < i+5000; j++ {
			otn := fmt.Sprintf("01MEM%019d", j)
			o := store.Order{OutTradeNo: otn, Seq: 3, State: store.StatePaid, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", SKU: "sku-1",
				Description: "flash sale item", Quantity: 1, Total: 1999, Currency: "CNY", PrepayID: "wx" + otn,
				TransactionID: "4200000" + otn, CreatedMs: now.UnixMilli(), PrepaidMs: now.UnixMilli(), PaidMs: now.UnixMilli(),
				ExpiresMs: now.Add(15 * time.Minute).UnixMilli()}
			w.PutOrder(&o)
			w.AddEvent(&event.Event{EventID: event.ID(otn, 3), Type: event.OrderPaid, OutTradeNo: otn, Seq: 3, TimeMs: now.UnixMilli(), Amount: 1999})
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	_ = st.Close()
	st, err = store.Open(dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sys, err := New(Config{AppID: "wx", MchID: "1", NotifyURL: "https://shop.example/notify", Idle: 30 * time.Second, Partitions: 16}, st, &scriptedWeChat{state: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sys.Run(ctx); close(done) }()
	defer func() {
		c, cc := context.WithTimeout(context.Background(), time.Minute)
		_ = sys.Close(c)
		cc()
		cancel()
		<-done
	}()
	base := heapInUse()
	// wake loads `live` order actors starting at order offset off.
	wake := func(off int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 256)
		for i := 0; i < live; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				otn := fmt.Sprintf("01MEM%019d", off+i*(orders/live/2)*2)
				if r, err := sys.Request(context.Background(), &Get{OutTradeNo: otn}); err != nil || !r.Exists {
					b.Errorf("get %s: %v", otn, err)
				}
			}(i)
		}
		wg.Wait()
	}
	passivateAll := func() {
		deadline := time.Now().Add(2 * time.Minute)
		for sys.Metrics().LiveOrders.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	wake(0)
	liveActors := sys.Metrics().LiveOrders.Load()
	withLive := heapInUse()
	rss := rssMiB()
	passivateAll()
	after1 := heapInUse()
	// A second, different 100,000: if passivated orders cost heap, the heap
	// grows by what they cost; what the first round left is a high-water
	// mark of the peak live count (protoactor's process registry and
	// mailbox rings do not shrink), not a per-order cost.
	wake(1)
	passivateAll()
	after := heapInUse()
	if p := os.Getenv("WXPAYD_HEAP_PROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(float64(withLive-base)/float64(liveActors), "heap-B/live-actor")
	b.ReportMetric(float64(after-after1)/float64(live), "heap-B/passivated-order")
	b.ReportMetric(float64(after1-base)/(1<<20), "high-water-MiB")
	b.Logf("%d orders in store; %d actors live: RSS %.0f MiB, heap %d → %d; after passivation %d; after a second 100k woke and passivated %d (%d live)",
		orders, liveActors, rss, base, withLive, after1, after, sys.Metrics().LiveOrders.Load())
	if rss > 1024 {
		b.Errorf("resident set %.0f MiB exceeds 1 GiB", rss)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc) // live objects; HeapInuse would also count spans that freed actors left partly used
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
