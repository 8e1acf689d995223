package peers

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/go-pay/gopay/wechat"

	"github.com/wxpayd/wxpayd/wxpay"
)

func BenchmarkV2Sign(b *testing.B) {
	// <algo>-floor hashes the finished string to sign (sorted k=v pairs and
	// &key=, built once) into upper-case hex without allocating: the cost no
	// implementation can avoid, which bounds the speed-up over gopay.
	m := unifiedOrder12()
	bm := bodyMap(m)
	k := newV2Key(b, apiV2Key)
	msg := []byte(bm.EncodeWeChatSignParams(apiV2Key))
	var hexOut [2 * sha256.Size]byte
	for _, st := range []struct {
		name  string
		t     wxpay.V2SignType
		floor func() []byte
	}{
		{"md5", wxpay.V2SignMD5, func() func() []byte {
			var sum [md5.Size]byte
			return func() []byte { sum = md5.Sum(msg); return sum[:] }
		}()},
		{"hmac", wxpay.V2SignHMACSHA256, func() func() []byte {
			h := hmac.New(sha256.New, []byte(apiV2Key))
			var sum [sha256.Size]byte
			return func() []byte { h.Reset(); h.Write(msg); return h.Sum(sum[:0]) }
		}()},
	} {
		b.Run(st.name+"-wxpayd", func(b *testing.B) {
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				sinkString, sinkErr = k.Sign(m, st.t)
			}
		})
		b.Run(st.name+"-gopay", func(b *testing.B) {
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				sinkString = wechat.GetReleaseSign(apiV2Key, string(st.t), bm)
			}
		})
		b.Run(st.name+"-floor", func(b *testing.B) {
			want := wechat.GetReleaseSign(apiV2Key, string(st.t), bm)
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				sinkBytes = upperHexInto(hexOut[:], st.floor())
			}
			if got := strings.ToUpper(hex.EncodeToString(st.floor())); got != want {
				b.Fatalf("floor %s, gopay %s", got, want)
			}
		})
	}
}

// upperHexInto writes src as upper-case hex into dst and returns it.
func upperHexInto(dst, src []byte) []byte {
	const digits = "0123456789ABCDEF"
	for i, c := range src {
		dst[2*i], dst[2*i+1] = digits[c>>4], digits[c&0xf]
	}
	return dst[:2*len(src)]
}
