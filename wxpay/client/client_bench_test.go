package client

import (
	"context"
	"testing"
)

// BenchmarkPrepay measures one Prepay through the in-memory fake server:
// signing (RSA-2048, the dominant cost), the HTTP exchange, the fake's
// Authorization check, and verifying the answer. The fake signs each
// distinct answer once, so its own RSA signing stays out of the number.
func BenchmarkPrepay(b *testing.B) {
	f := newFake(b)
	f.useFixedSignatures()
	c := newTestClient(b, f, Config{}, nil)
	req := prepayRequest()
	ctx := context.Background()
	if _, err := c.Prepay(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Prepay(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrepayParallel is BenchmarkPrepay from GOMAXPROCS goroutines.
func BenchmarkPrepayParallel(b *testing.B) {
	f := newFake(b)
	f.useFixedSignatures()
	c := newTestClient(b, f, Config{}, nil)
	req := prepayRequest()
	ctx, cancel := context.WithCancel(context.Background()) // cancellable: the goroutine path
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Prepay(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
