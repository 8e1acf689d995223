package wxpay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
)

// V2SignType names an APIv2 signature algorithm exactly as it appears in the
// sign_type field of a document and the signType of wx.requestPayment.
type V2SignType string

// APIv2 signature algorithms. An absent sign_type means V2SignMD5.
const (
	// V2SignMD5 is upper-case hex MD5 over the sorted parameters and the key.
	V2SignMD5 V2SignType = "MD5"
	// V2SignHMACSHA256 is upper-case hex HMAC-SHA256, keyed by the APIv2 key,
	// over the same string.
	V2SignHMACSHA256 V2SignType = "HMAC-SHA256"
)

// Hex lengths of the two signatures; VerifyAuto uses them to recognise a
// document signed with the other algorithm.
const (
	v2MD5HexLen  = 2 * md5.Size
	v2HMACHexLen = 2 * sha256.Size
)

// V2Key is a merchant's APIv2 key, prepared once for signing, verifying and
// refund req_info decryption. It is safe for concurrent use and never shows
// the key when printed.
type V2Key struct {
	hmacKey []byte // the APIv2 key
	suffix  []byte // "key=<APIv2 key>", the tail of every signed string
	ecb     cipher.Block
	hmacs   sync.Pool // hash.Hash: HMAC-SHA256 keyed by hmacKey, Reset before use
}

// NewV2Key prepares the merchant's APIv2 key (32 bytes as set in the merchant
// portal; other non-empty lengths are accepted because signing does not care).
// An empty key is an ErrMissingField. NewV2Key copies key.
func NewV2Key(key []byte) (*V2Key, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: APIv2 key", ErrMissingField)
	}
	k := &V2Key{hmacKey: slices.Clone(key)}
	k.suffix = append(append(make([]byte, 0, 4+len(key)), "key="...), key...)
	// req_info key: the 32 ASCII bytes of the lower-case hex MD5 of the key.
	sum := md5.Sum(key)
	var aesKey [2 * md5.Size]byte
	hex.Encode(aesKey[:], sum[:])
	block, err := aes.NewCipher(aesKey[:])
	if err != nil { // unreachable: the key is always 32 bytes
		return nil, fmt.Errorf("wxpay: APIv2 req_info cipher: %w", err)
	}
	k.ecb = block
	k.hmacs.New = func() any { return hmac.New(sha256.New, k.hmacKey) }
	return k, nil
}

// String implements fmt.Stringer without revealing the key.
func (k *V2Key) String() string { return "wxpay.V2Key(redacted)" }

// GoString implements fmt.GoStringer without revealing the key.
func (k *V2Key) GoString() string { return k.String() }

// Sign returns the APIv2 signature of params: every parameter with a
// non-empty value except sign, sorted by name in byte order, joined as
// k=v&k=v with raw (not URL-encoded) values, then &key=<APIv2 key>, hashed
// with t and written as upper-case hex. sign_type and unknown fields are
// signed like any other. Sign does not modify or retain params; an unknown t
// is an ErrV2UnsupportedSignType.
func (k *V2Key) Sign(params map[string]string, t V2SignType) (string, error) {
	var out [v2HMACHexLen]byte
	n, err := k.signParams(params, t, &out)
	if err != nil {
		return "", err
	}
	return string(out[:n]), nil
}

// Verify recomputes the signature of params with t and compares it in
// constant time with params["sign"]. It returns ErrV2UnsupportedSignType for
// an unknown t, ErrV2MissingSign when sign is absent or empty, and
// ErrV2BadSign when it differs (a lower-case hex sign differs).
func (k *V2Key) Verify(params map[string]string, t V2SignType) error {
	if !t.valid() {
		return errV2SignType(t)
	}
	sig := params["sign"]
	if sig == "" {
		return ErrV2MissingSign
	}
	var out [v2HMACHexLen]byte
	n, err := k.signParams(params, t, &out)
	if err != nil {
		return err
	}
	if !v2SignEqual(out[:n], sig) {
		return ErrV2BadSign
	}
	return nil
}

// VerifyAuto verifies params with the algorithm named by its sign_type field
// (V2SignMD5 when absent or empty). If the sign's length contradicts that
// choice (32 hex digits are MD5, 64 are HMAC-SHA256), the algorithm the length
// indicates is used instead: merchants configured for HMAC-SHA256 are
// reported to receive MD5-signed notifications at times (a community
// workaround, not documented by WeChat). Errors are those of Verify.
func (k *V2Key) VerifyAuto(params map[string]string) error {
	t := V2SignMD5
	if st := params["sign_type"]; st != "" {
		t = V2SignType(st)
		if !t.valid() {
			return errV2SignType(t)
		}
	}
	switch len(params["sign"]) {
	case v2MD5HexLen:
		t = V2SignMD5
	case v2HMACHexLen:
		t = V2SignHMACSHA256
	}
	return k.Verify(params, t)
}

func (t V2SignType) valid() bool { return t == V2SignMD5 || t == V2SignHMACSHA256 }

func errV2SignType(t V2SignType) error {
	s := string(t)
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return fmt.Errorf("%w: %q", ErrV2UnsupportedSignType, s)
}

// v2SignEqual compares a computed upper-case hex signature with the received
// one in constant time (the length is public).
func v2SignEqual(want []byte, got string) bool {
	if len(got) != len(want) {
		return false
	}
	var g [v2HMACHexLen]byte
	copy(g[:], got)
	return subtle.ConstantTimeCompare(want, g[:len(want)]) == 1
}

// signParams writes the upper-case hex signature of params into out and
// returns its length.
func (k *V2Key) signParams(params map[string]string, t V2SignType, out *[v2HMACHexLen]byte) (int, error) {
	if !t.valid() {
		return 0, errV2SignType(t)
	}
	var st v2Sorter
	sorted, size := st.sort(params, true)

	bp := getBuf()
	b := slices.Grow((*bp)[:0], size+len(k.suffix)+sha256.Size)
	for i := range sorted {
		p := &sorted[i]
		b = append(b, p.k...)
		b = append(b, '=')
		b = append(b, p.v...)
		b = append(b, '&')
	}
	b = append(b, k.suffix...)
	n := k.digestHex(b, t, out)
	*bp = b
	putBuf(bp)
	return n, nil
}

// digestHex hashes msg (the full string to sign, key included) with t, which
// must be valid, and writes upper-case hex into out. For HMAC the digest is
// appended to msg's spare capacity, so msg must be a scratch buffer.
func (k *V2Key) digestHex(msg []byte, t V2SignType, out *[v2HMACHexLen]byte) int {
	if t == V2SignMD5 {
		sum := md5.Sum(msg)
		return upperHex(out[:], sum[:])
	}
	h := k.hmacs.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	sum := h.Sum(msg[len(msg):len(msg)])
	n := upperHex(out[:], sum)
	k.hmacs.Put(h)
	return n
}

const upperHexDigits = "0123456789ABCDEF"

func upperHex(dst, src []byte) int {
	for i, c := range src {
		dst[2*i] = upperHexDigits[c>>4]
		dst[2*i+1] = upperHexDigits[c&0x0f]
	}
	return 2 * len(src)
}

// v2KV is one parameter.
type v2KV struct{ k, v string }

// v2StackFields is how many parameters v2Sorter holds before its slices move
// to the heap; real documents have fewer than 32.
const v2StackFields = 32

// v2Sorter puts parameters in name order without allocating for ordinary
// documents. Sorting moves only integers: each key holds the first six bytes
// of a name, zero-padded, above a 16-bit index. Zero-padded prefixes that
// differ order their names the same way as the names do, so only runs of
// equal prefixes (coupon_fee_0, coupon_id_0, ...) are then sorted by full
// name. A v2Sorter lives on its user's stack.
type v2Sorter struct {
	keys [v2StackFields]uint64
	in   [v2StackFields]v2KV
	out  [v2StackFields]v2KV
}

// sort collects params (for signing, those with a non-empty value other than
// sign; otherwise those named as XML names) and returns them in name order,
// with the total length of names and values plus two bytes per parameter.
func (st *v2Sorter) sort(params map[string]string, signing bool) (sorted []v2KV, size int) {
	in := st.in[:0]
	for name, v := range params {
		if signing && (v == "" || name == "sign") || !signing && !validXMLName(name) {
			continue
		}
		in = append(in, v2KV{name, v})
		size += len(name) + len(v) + 2
	}
	if len(in) > 1<<16 { // not a real document: sort the strings themselves
		slices.SortFunc(in, func(a, b v2KV) int { return strings.Compare(a.k, b.k) })
		return in, size
	}
	keys := st.keys[:0]
	for i := range in {
		keys = append(keys, v2NamePrefix(in[i].k)<<16|uint64(i))
	}
	slices.Sort(keys)
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j]>>16 == keys[i]>>16 {
			j++
		}
		run := keys[i:j]
		switch {
		case len(run) > 12: // hostile documents can share one prefix thousands of times
			slices.SortFunc(run, func(a, b uint64) int { return strings.Compare(in[uint16(a)].k, in[uint16(b)].k) })
		case len(run) > 1: // same prefix: order by the whole name
			for a := 1; a < len(run); a++ {
				x := run[a]
				b := a
				for b > 0 && in[uint16(x)].k < in[uint16(run[b-1])].k {
					run[b] = run[b-1]
					b--
				}
				run[b] = x
			}
		}
		i = j
	}
	sorted = st.out[:0]
	for _, key := range keys {
		sorted = append(sorted, in[uint16(key)])
	}
	return sorted, size
}

// v2NamePrefix returns the first six bytes of s, zero-padded, as a
// big-endian integer.
func v2NamePrefix(s string) uint64 {
	if len(s) >= 6 {
		return uint64(s[0])<<40 | uint64(s[1])<<32 | uint64(s[2])<<24 |
			uint64(s[3])<<16 | uint64(s[4])<<8 | uint64(s[5])
	}
	var p uint64
	for i := 0; i < len(s); i++ {
		p |= uint64(s[i]) << (40 - 8*i)
	}
	return p
}
