package sim

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// BenchmarkTradeBillDownload downloads a synthetic ALL trade bill of
// 1,000,000 rows (WXPAYSIM_BENCH_BILL_ROWS sets another size) from a
// simulator on loopback through wxpay/client, verifies its SHA1 while it
// streams and parses every row, plain and gzipped:
//
//	go test ./bench/sim -run '^$' -bench BenchmarkTradeBillDownload -benchtime 3x
//
// Each iteration asks for the bill (a signed GET), downloads, verifies and
// parses it. It reports rows/s, MB/s of plain bill, the peak of live heap
// objects sampled every 2 ms (peak-heap-MB) and the process's maximum
// resident set (maxrss-MB). Both include the simulator rendering the file
// in the same process; neither side holds the bill in memory.
func BenchmarkTradeBillDownload(b *testing.B) {
	rows := 1_000_000
	if s := os.Getenv("WXPAYSIM_BENCH_BILL_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	ts := startSim(b, func(c *Config) { c.Clock = SystemClock; c.BillReadyAfter = BillReadyNow })
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	if _, err := ts.SyntheticBill(date, rows); err != nil {
		b.Fatal(err)
	}
	c := billClient(b, ts)
	ctx := context.Background()
	for _, gz := range []bool{false, true} {
		b.Run("gzip="+strconv.FormatBool(gz), func(b *testing.B) {
			if _, err := c.TradeBill(ctx, date, wxpay.BillTypeAll, gz); err != nil { // the simulator digests the bill once
				b.Fatal(err)
			}
			ts.bills.mu.Lock()
			_, size, err := ts.bills.days[date].digest(bkAll)
			ts.bills.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			runtime.GC()
			peak := sampleHeap(2 * time.Millisecond)
			b.ResetTimer()
			for range b.N {
				info, err := c.TradeBill(ctx, date, wxpay.BillTypeAll, gz)
				if err != nil {
					b.Fatal(err)
				}
				rc, err := c.DownloadBill(ctx, info)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				sum, _, err := wxpay.ParseTradeBill(rc, wxpay.BillTypeAll, func(*wxpay.TradeBillRow) error { n++; return nil })
				if cerr := rc.Close(); err == nil {
					err = cerr
				}
				if err != nil || n != rows || sum.Count != int64(rows) {
					b.Fatalf("%v: %d rows, summary %+v", err, n, sum)
				}
			}
			b.StopTimer()
			heap := peak()
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
			var ru syscall.Rusage
			if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB") // Linux: KiB
			}
		})
	}
}

// sampleHeap samples the bytes of live and not yet swept heap objects
// every interval until the returned function is called, which returns the
// peak.
func sampleHeap(interval time.Duration) func() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var (
		mu   sync.Mutex
		peak uint64
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	read := func() {
		metrics.Read(s)
		mu.Lock()
		peak = max(peak, s[0].Value.Uint64())
		mu.Unlock()
	}
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			read()
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		read()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
