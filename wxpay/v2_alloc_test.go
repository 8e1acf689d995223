//go:build !race

package wxpay

import "testing"

// TestV2SignAllocs pins the allocation budget of the APIv2 hot path: signing
// makes only its result string, and verifying makes nothing.
func TestV2SignAllocs(t *testing.T) {
	k := v2MustKey(t, v2K6Key)
	for _, c := range v2BenchTypes {
		p := v2BenchParams(c.st)
		signed := v2Signed(t, k, p, c.st)
		t.Run(c.name+" Sign allocates only its result", func(t *testing.T) {
			n := testing.AllocsPerRun(1000, func() {
				if _, err := k.Sign(p, c.st); err != nil {
					t.Fatal(err)
				}
			})
			if n > 1 {
				t.Fatalf("Sign: %v allocs/op, want 1", n)
			}
		})
		t.Run(c.name+" Verify does not allocate", func(t *testing.T) {
			n := testing.AllocsPerRun(1000, func() {
				if err := k.VerifyAuto(signed); err != nil {
					t.Fatal(err)
				}
			})
			if n != 0 {
				t.Fatalf("VerifyAuto: %v allocs/op, want 0", n)
			}
		})
		t.Run(c.name+" RequestPayment allocates only its strings", func(t *testing.T) {
			n := testing.AllocsPerRun(1000, func() {
				if _, err := k.RequestPayment("wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072", 1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", c.st); err != nil {
					t.Fatal(err)
				}
			})
			if n > 3 { // timeStamp, package, paySign
				t.Fatalf("RequestPayment: %v allocs/op, want <= 3", n)
			}
		})
	}
	t.Run("AppendV2XML into a large enough buffer does not allocate", func(t *testing.T) {
		p := v2BenchParams(V2SignMD5)
		buf := AppendV2XML(nil, p)
		n := testing.AllocsPerRun(1000, func() { buf = AppendV2XML(buf[:0], p) })
		if n != 0 {
			t.Fatalf("AppendV2XML: %v allocs/op, want 0", n)
		}
	})
}
