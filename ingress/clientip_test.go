package ingress

import (
	"net"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestClientIP: the TCP peer is the buyer unless it is a trusted proxy;
// then X-Forwarded-For is read right to left, past the trusted hops, to
// the first address no trusted proxy is: a header an untrusted peer sends
// is never believed.
func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ff::/48"),
	}}}
	for _, tc := range []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"no proxy", "198.51.100.9", nil, "198.51.100.9"},
		{"an untrusted peer's header is ignored", "198.51.100.9", []string{"203.0.113.7"}, "198.51.100.9"},
		{"behind a trusted proxy", "10.0.0.5", []string{"203.0.113.7"}, "203.0.113.7"},
		{"past a chain of trusted proxies", "10.0.0.5", []string{"203.0.113.7, 10.1.2.3,10.9.9.9"}, "203.0.113.7"},
		{"a buyer's forged entry left of the real one", "10.0.0.5", []string{"1.2.3.4, 203.0.113.7"}, "203.0.113.7"},
		{"the last of several headers is nearest", "10.0.0.5", []string{"1.2.3.4", "203.0.113.8"}, "203.0.113.8"},
		{"garbage stops at the last hop vouched for", "10.0.0.5", []string{"203.0.113.7, not-an-ip, 10.1.1.1"}, "10.1.1.1"},
		{"a zone is garbage", "10.0.0.5", []string{"fe80::1%eth0"}, "10.0.0.5"},
		{"a trusted proxy without the header", "10.0.0.5", nil, "10.0.0.5"},
		{"every hop trusted: the first of them", "10.0.0.5", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"IPv6 buyer behind an IPv6 proxy", "2001:db8:ff::1", []string{"2001:db8:1::42"}, "2001:db8:1::42"},
		{"an IPv4-mapped buyer is written as IPv4", "10.0.0.5", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(tc.peer), Port: 40000}, nil)
			if got := s.clientIP(&ctx); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("a peer that is not an IP connection", func(t *testing.T) {
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, nil, nil)
		if got := s.clientIP(&ctx); got != "" {
			t.Errorf("clientIP = %q, want none", got)
		}
	})
	t.Run("the hops read are bounded", func(t *testing.T) {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		v := "203.0.113.7"
		for range maxForwardedHops + 5 {
			v += ", 10.0.0.1"
		}
		req.Header.Set("X-Forwarded-For", v)
		ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("10.0.0.5")}, nil)
		if got := s.clientIP(&ctx); got != "10.0.0.1" {
			t.Errorf("clientIP = %q, want the last trusted hop read", got)
		}
	})
}

func TestValidClientIP(t *testing.T) {
	for in, want := range map[string]string{"203.0.113.7": "203.0.113.7", "2001:DB8::1": "2001:db8::1", "::ffff:1.2.3.4": "1.2.3.4"} {
		if got, ok := validClientIP(in); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "1.2.3", "fe80::1%eth0", "203.0.113.7:80", "example.com", "1.2.3.4 "} {
		if _, ok := validClientIP(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
}
