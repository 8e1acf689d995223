package wxpay

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"
)

// stdFlatXML parses a flat document with encoding/xml in strict mode, the
// oracle FuzzV2XML compares ParseV2XML with.
func stdFlatXML(body []byte) (map[string]string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	m := map[string]string{}
	depth, name, val := 0, "", []byte(nil)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			name, val = tok.Name.Local, val[:0]
		case xml.EndElement:
			if depth == 2 {
				m[name] = string(val)
			}
			depth--
		case xml.CharData:
			if depth == 2 {
				val = append(val, tok...)
			}
		}
	}
}

func hasCR(m map[string]string) bool {
	for _, v := range m {
		if strings.IndexByte(v, '\r') >= 0 {
			return true
		}
	}
	return false
}

// FuzzV2XML checks that ParseV2XML never panics, fails only with
// ErrMalformed, and that whatever it accepts survives AppendV2XML and a
// second parse unchanged.
func FuzzV2XML(f *testing.F) {
	f.Add([]byte(V2NotifySuccessReply))
	f.Add(V2NotifyFailReply("签名失败"))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><xml><a>&lt;&#x41;&#66;</a><b/><c><![CDATA[]]]]><![CDATA[>]]></c></xml>`))
	f.Add([]byte(`<!DOCTYPE xml [<!ENTITY x "y">]><xml><a>&x;</a></xml>`))
	f.Add([]byte(`<xml><a><b>1</b></a></xml>`))
	f.Add([]byte(`<xml><a>1</a><a>2</a></xml>`))
	f.Add([]byte("<xml><a>\xff</a></xml>"))
	k, err := NewV2Key([]byte(v2K6Key))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseV2XML(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// The optimised sorter agrees with the obvious signing string.
		d := md5.Sum([]byte(v2RefSignString(m, v2K6Key)))
		if got, _ := k.Sign(m, V2SignMD5); got != strings.ToUpper(hex.EncodeToString(d[:])) {
			t.Fatalf("Sign disagrees with the reference for %q", m)
		}
		// What ParseV2XML accepts, encoding/xml accepts with the same values
		// (it normalises line ends, which ParseV2XML keeps as signed).
		if std, err := stdFlatXML(body); err != nil {
			t.Fatalf("encoding/xml rejects what ParseV2XML accepted: %v", err)
		} else if !hasCR(m) && !maps.Equal(m, std) {
			t.Fatalf("ParseV2XML = %q, encoding/xml = %q", m, std)
		}
		enc := AppendV2XML(nil, m)
		if len(enc) > V2MaxXMLSize {
			return // CDATA wrapping can push a document just under the limit over it
		}
		m2, err := ParseV2XML(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		if !maps.Equal(m, m2) {
			t.Fatalf("round trip changed %q into %q", m, m2)
		}
	})
}

// FuzzV2ReqInfo checks that DecryptReqInfo never panics and fails only with
// ErrV2ReqInfo, and that EncryptReqInfo and the decryption invert each other
// for any plaintext.
func FuzzV2ReqInfo(f *testing.F) {
	k, err := NewV2Key([]byte(v2K8Key))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("<root><refund_id>1</refund_id></root>"))
	f.Add([]byte(""))
	f.Add([]byte("AAAAAAAAAAAAAAAAAAAAAA=="))
	f.Add([]byte("YYwp8C48th0wnQzTqeI+41pflB26v+smFj9z6h9RPBgxTyZyxc+4YNEz7QEgZNWj"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := k.DecryptReqInfo(string(data)); err != nil && !errors.Is(err, ErrV2ReqInfo) {
			t.Fatalf("error %v does not wrap ErrV2ReqInfo", err)
		}
		ct, err := k.EncryptReqInfo(data)
		if err != nil {
			if !errors.Is(err, ErrV2ReqInfo) {
				t.Fatalf("EncryptReqInfo error %v does not wrap ErrV2ReqInfo", err)
			}
			return
		}
		plain, err := k.decryptReqInfo(ct)
		if err != nil || !bytes.Equal(plain, data) {
			t.Fatalf("round trip of %q: %q, %v", data, plain, err)
		}
		if info, err := k.DecryptReqInfo(ct); err == nil && info.RefundFee <= 0 {
			t.Fatalf("accepted refund_fee %d", info.RefundFee)
		}
	})
}
