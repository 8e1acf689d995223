package ingress

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// The buyer's IP. WeChat asks for the payer's IP with a Mini Program
// prepay (APIv3 scene_info.payer_client_ip, APIv2 spbill_create_ip: "the
// user's client IP" for APP and web payments; only Native payments send
// the server's). wxpayd sees the TCP peer. Behind a reverse proxy or a
// load balancer that is the proxy, and the buyer's IP travels in
// X-Forwarded-For, which anyone can write: Config.TrustedProxies lists the
// peers whose X-Forwarded-For is believed. The buyer is then the rightmost
// address in the header that is not itself a trusted proxy; a header from
// any other peer is ignored.

// maxForwardedHops bounds how far back X-Forwarded-For is read.
const maxForwardedHops = 16

// clientIP returns the buyer's IP for the request, or "" when the peer is
// not an IP connection (in-memory tests).
func (s *Server) clientIP(ctx *fasthttp.RequestCtx) string {
	peer, ok := netip.AddrFromSlice(ctx.RemoteIP())
	ip := peer.Unmap() // net.IP holds IPv4 in 16 bytes
	if !ok || !ip.IsValid() || ip.IsUnspecified() {
		return ""
	}
	if !s.trusted(ip) {
		return ip.String()
	}
	// Right to left: each address was added by the hop after it, which is
	// trusted so far. The first one not trusted is the buyer.
	hops := 0
	values := ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor)
	for v := len(values) - 1; v >= 0; v-- {
		list := values[v]
		for len(list) > 0 && hops < maxForwardedHops {
			var item []byte
			if i := bytes.LastIndexByte(list, ','); i >= 0 {
				item, list = list[i+1:], list[:i]
			} else {
				item, list = list, nil
			}
			a, err := netip.ParseAddr(string(bytes.TrimSpace(item)))
			if err != nil || a.Zone() != "" {
				return ip.String() // garbage from here on: the last hop vouched for
			}
			hops++
			if ip = a.Unmap(); !s.trusted(ip) {
				return ip.String()
			}
		}
	}
	return ip.String() // every hop trusted: the first of them
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// validClientIP reports whether s is an IPv4 or IPv6 address WeChat takes
// (no zone; at most 45 bytes, APIv3's limit), and returns its canonical form.
func validClientIP(s string) (string, bool) {
	if len(s) > 45 {
		return "", false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", false
	}
	return a.Unmap().String(), true
}
