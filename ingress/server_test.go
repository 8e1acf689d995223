package ingress

import (
	"context"
	"net"
	"testing"
	"time"
)

// A Close that comes before Run has begun (a signal at start, a test that
// sent nothing) makes Run return at once; a Close during Run ends it with
// nil. Neither leaves a listener serving.
func TestCloseEndsRunWhicheverComesFirst(t *testing.T) {
	s := newStack(t, stackOpts{})
	for _, closeFirst := range []bool{true, false} {
		d := s.srv.d
		d.Registry, d.Gatherer = nil, nil // the stack's server registered the metrics
		srv, err := New(s.srv.cfg, d)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan error, 1)
		if closeFirst {
			if err := srv.Close(context.Background()); err != nil {
				t.Fatalf("Close before Run: %v", err)
			}
			go func() { ran <- srv.Run(ln) }()
		} else {
			go func() { ran <- srv.Run(ln) }()
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err == nil {
					_ = c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("Run never served")
				}
				time.Sleep(10 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Close(ctx)
			cancel()
			if err != nil {
				t.Fatalf("Close during Run: %v", err)
			}
		}
		select {
		case err := <-ran:
			if err != nil && !closeFirst {
				t.Fatalf("Run after Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Run still serving after Close (close first: %v)", closeFirst)
		}
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			_ = c.Close()
			t.Fatalf("the listener still accepts after Close (close first: %v)", closeFirst)
		}
	}
}
