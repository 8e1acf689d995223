package jsonw

import (
	"bytes"
	"encoding/json"
	"testing"
)

func marshalString(t testing.TB, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f",
		"\x00\x01\x1f\x7f", "中文 退货", "line\u2028para\u2029", "bad \xff\xfe utf8", "\xe4\xb8", "emoji 😀",
	} {
		if got, want := String(nil, s), marshalString(t, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, encoding/json %s", s, got, want)
		}
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<>&", "\u2028", "\xff", "中"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := String([]byte("x"), s), append([]byte("x"), marshalString(t, s)...); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}

func TestObject(t *testing.T) {
	o := Open([]byte("["))
	o.Str("a", "x")
	o.StrOmit("b", "")
	o.Int("c", -3)
	o.IntOmit("d", 0)
	o.Uint("e", 7)
	o.BoolOmit("f", false)
	o.BoolOmit("g", true)
	o.StrsOmit("h", nil)
	o.StrsOmit("i", []string{"p", "q"})
	o.Raw("j", func(b []byte) []byte { return append(b, "null"...) })
	if got, want := string(o.Close()), `[{"a":"x","c":-3,"e":7,"g":true,"i":["p","q"],"j":null}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	o = Open(nil)
	if got := string(o.Close()); got != "{}" {
		t.Fatalf("empty object: %s", got)
	}
}
