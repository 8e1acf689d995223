package ingress

import (
	"context"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/bench/cpustat"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// BenchmarkPrepayCPU measures what one order costs wxpayd on the prepay
// path in each merchant API, side by side in one run: session check,
// reservation, durable CREATED, the WeChat call (APIv3: an RSA-signed
// Authorization and an RSA-verified answer; APIv2: an MD5 or HMAC-SHA256
// signed XML document and a verified XML reply), durable PREPAID and the
// wx.requestPayment paySign (RSA; MD5 or HMAC-SHA256). WeChat is a
// constant answer signed once before the timer starts, so its own signing
// (which the simulator would do on the same two cores) is not counted;
// the load generator is in the process and is counted, the same in every
// mode. 64 buyers at a time (WXPAYD_BENCH_PARALLELISM per core, default
// 32) keep both cores busy through the two fsyncs of every order.
//
//	go test -run '^$' -bench PrepayCPU -benchtime 3000x -count 3 ./ingress/
//
// cpu-us/order is the process's CPU time per order; orders/s the rate it
// reached; max-orders/s-2cores is 2 CPU-seconds divided by cpu-us/order,
// the ceiling two cores allow when nothing else runs on them.
func BenchmarkPrepayCPU(b *testing.B) {
	for _, mode := range []struct {
		name string
		api  string
		st   wxpay.V2SignType
	}{
		{"api=v3", "", ""},
		{"api=v2-md5", "v2", wxpay.V2SignMD5},
		{"api=v2-hmac", "v2", wxpay.V2SignHMACSHA256},
	} {
		b.Run(mode.name, func(b *testing.B) {
			wechat := constantWeChat(b, mode.api, mode.st)
			s := newStack(b, stackOpts{prepayQPS: -1, api: mode.api, v2SignType: mode.st, wechatURL: wechat})
			if _, err := s.sys.Inventory().Put(context.Background(), skuOf("p", int64(b.N)+100)); err != nil {
				b.Fatal(err)
			}
			tok, _ := s.srv.sess.issue("bench-buyer")
			c := loadClient(s.url[len("http://"):])
			var bad atomic.Int64
			b.SetParallelism(parallelism(32)) // 64 buyers: enough to fill both cores through the fsyncs
			cpu0, cpuOK := cpustat.Process()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					req.Reset()
					req.SetRequestURI(s.url + "/api/v1/orders")
					req.Header.SetMethod("POST")
					req.Header.Set("Authorization", "Bearer "+tok)
					req.SetBodyString(`{"sku":"p","quantity":1}`)
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 201 {
						bad.Add(1)
					}
				}
			})
			b.StopTimer()
			took := time.Since(start)
			cpu1, _ := cpustat.Process()
			if n := bad.Load(); n > 0 {
				b.Fatalf("%d orders failed", n)
			}
			b.ReportMetric(float64(b.N)/took.Seconds(), "orders/s")
			if cpuOK {
				us := float64((cpu1 - cpu0).Microseconds()) / float64(b.N)
				b.ReportMetric(us, "cpu-us/order")
				b.ReportMetric(2e6/us, "max-orders/s-2cores")
			}
		})
	}
}

// constantWeChat serves the prepay answer of the given API (api "" is
// APIv3) from bytes signed once, as WeChat would sign them, so that a
// benchmark counts only wxpayd's work. It returns its base URL.
func constantWeChat(b *testing.B, api string, st wxpay.V2SignType) string {
	b.Helper()
	id := identity(b)
	var h fasthttp.RequestHandler
	if api == "v2" {
		m := v2Merchant(b, id, st)
		p := map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "appid": id.AppID, "mch_id": id.MchID,
			"nonce_str": wxpay.NewNonce(), "result_code": "SUCCESS", "trade_type": "JSAPI",
			"prepay_id": "wx20261206000000bench0000000000000000"}
		sig, err := m.Key.Sign(p, st)
		if err != nil {
			b.Fatal(err)
		}
		p["sign"] = sig
		body := wxpay.AppendV2XML(nil, p)
		h = func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/xml; charset=utf-8")
			ctx.SetBody(body)
		}
	} else {
		backend, err := openssl.Select("auto", "")
		if err != nil {
			b.Fatal(err)
		}
		key, err := backend.NewPrivateKey(id.WechatPayKey)
		if err != nil {
			b.Fatal(err)
		}
		body := []byte(`{"prepay_id":"wx20261206000000bench0000000000000000"}`)
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), wxpay.NewNonce()
		sig, err := wxpay.SignResponse(key, ts, nonce, body) // valid for WeChat's 5 minutes
		if err != nil {
			b.Fatal(err)
		}
		h = func(ctx *fasthttp.RequestCtx) {
			hd := &ctx.Response.Header
			hd.Set(wxpay.HeaderTimestamp, ts)
			hd.Set(wxpay.HeaderNonce, nonce)
			hd.Set(wxpay.HeaderSignature, sig)
			hd.Set(wxpay.HeaderSerial, id.PublicKeyID)
			hd.Set(wxpay.HeaderSignatureType, wxpay.SignatureType)
			hd.SetContentType("application/json; charset=utf-8")
			ctx.SetBody(body)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// parallelism is WXPAYD_BENCH_PARALLELISM, or def.
func parallelism(def int) int {
	if n, err := strconv.Atoi(os.Getenv("WXPAYD_BENCH_PARALLELISM")); err == nil && n > 0 {
		return n
	}
	return def
}
