package wxpay

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
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
	suffix     []byte // "key=<APIv2 key>", the tail of every signed string
	ipad, opad []byte // HMAC-SHA256 states after the key blocks (v2HMACStates)
	ecb        cipher.Block
}

// NewV2Key prepares the merchant's APIv2 key (32 bytes as set in the merchant
// portal; other non-empty lengths are accepted because signing does not care).
// An empty key is an ErrMissingField. NewV2Key copies key.
func NewV2Key(key []byte) (*V2Key, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: APIv2 key", ErrMissingField)
	}
	k := &V2Key{}
	k.ipad, k.opad = v2HMACStates(key)
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
// returns its length. It works in a pooled v2Scratch, which unlike arrays on
// the stack needs no zeroing per call.
func (k *V2Key) signParams(params map[string]string, t V2SignType, out *[v2HMACHexLen]byte) (int, error) {
	if !t.valid() {
		return 0, errV2SignType(t)
	}
	sc := v2Scratches.Get().(*v2Scratch)
	keys, kv := sc.keys[:], sc.kv[:]
	n, size, ok := v2Collect(keys, kv, params, true)
	if !ok {
		v2Scratches.Put(sc)
		return k.signSorted(params, t, out), nil
	}
	size += len(k.suffix)

	b := sc.msg
	if size > cap(b) {
		b = make([]byte, max(size, 1024))
		if size <= v2ScratchMsgMax {
			sc.msg = b
		}
	}
	b = b[:size]
	off := 0
	for _, key := range keys[:n] {
		p := &kv[uint8(key)]
		off += copy(b[off:], p.k)
		b[off] = '='
		off++
		off += copy(b[off:], p.v)
		b[off] = '&'
		off++
	}
	copy(b[off:], k.suffix)
	hexLen := k.digestHex(b, t, out)
	clear(kv[:n]) // do not keep the caller's strings alive
	v2Scratches.Put(sc)
	return hexLen, nil
}

// v2ScratchFields is how many parameters signParams sorts in a v2Scratch
// (at most 256); real documents have far fewer. Larger maps are sorted on
// the heap.
const v2ScratchFields = 64

// v2ScratchMsgMax is the longest string to sign a v2Scratch keeps a buffer
// for; a longer one (a huge detail field) gets a buffer of its own.
const v2ScratchMsgMax = 64 << 10

// v2Scratch is signParams' working memory, reused through v2Scratches.
type v2Scratch struct {
	keys [v2ScratchFields]uint64 // name prefix << 8 | index into kv
	kv   [v2ScratchFields]v2KV
	msg  []byte // the string to sign
}

var v2Scratches = sync.Pool{New: func() any { return new(v2Scratch) }}

// signSorted is signParams for maps too large for its arrays.
func (k *V2Key) signSorted(params map[string]string, t V2SignType, out *[v2HMACHexLen]byte) int {
	var st v2Sorter
	sorted, size := st.sort(params, true)
	bp := getBuf()
	b := slices.Grow((*bp)[:0], size+len(k.suffix))
	for _, p := range sorted {
		b = append(append(append(append(b, p.k...), '='), p.v...), '&')
	}
	b = append(b, k.suffix...)
	n := k.digestHex(b, t, out)
	*bp = b
	putBuf(bp)
	return n
}

// v2SignsParam reports whether a parameter is signed: it has a value and is not
// the signature itself.
func v2SignsParam(name, v string) bool { return v != "" && name != "sign" }

// digestHex hashes msg (the full string to sign, key included) with t, which
// must be valid, and writes upper-case hex into out.
func (k *V2Key) digestHex(msg []byte, t V2SignType, out *[v2HMACHexLen]byte) int {
	if t == V2SignMD5 {
		sum := md5.Sum(msg)
		return upperHex(out[:], sum[:])
	}
	var sum [sha256.Size]byte
	k.hmacSHA256(msg, &sum)
	return upperHex(out[:], sum[:])
}

// v2HMACStates returns the SHA-256 states after the HMAC inner and outer key
// blocks (RFC 2104), as MarshalBinary writes them. Restoring a state is much
// cheaper than hashing a block; the states are as secret as the key.
func v2HMACStates(key []byte) (inner, outer []byte) {
	var k0 [sha256.BlockSize]byte
	if len(key) > len(k0) {
		d := sha256.Sum256(key)
		copy(k0[:], d[:])
	} else {
		copy(k0[:], key)
	}
	state := func(pad byte) []byte {
		var block [sha256.BlockSize]byte
		for i, c := range k0 {
			block[i] = c ^ pad
		}
		h := sha256.New()
		h.Write(block[:])
		s, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("wxpay: SHA-256 state does not marshal: " + err.Error())
		}
		return s
	}
	return state(0x36), state(0x5c)
}

// hmacSHA256 writes HMAC-SHA256(key, msg) into sum. Its SHA-256 digest is a
// concrete value the compiler keeps on the stack, so neither it nor msg
// escapes, unlike a pooled hash.Hash.
func (k *V2Key) hmacSHA256(msg []byte, sum *[sha256.Size]byte) {
	h := sha256.New()
	restore := h.(encoding.BinaryUnmarshaler)
	if err := restore.UnmarshalBinary(k.ipad); err != nil {
		panic("wxpay: SHA-256 state does not unmarshal: " + err.Error())
	}
	h.Write(msg)
	h.Sum(sum[:0])
	if err := restore.UnmarshalBinary(k.opad); err != nil {
		panic("wxpay: SHA-256 state does not unmarshal: " + err.Error())
	}
	h.Write(sum[:])
	h.Sum(sum[:0])
}

// upperHex writes src, whose length is a multiple of four, into dst as
// upper-case hex and returns the length written. It converts four bytes at a
// time inside a 64-bit word: each byte is spread into a 16-bit lane holding
// its two nibbles, and a nibble n becomes '0'+n, plus 7 when n > 9.
func upperHex(dst, src []byte) int {
	for i := 0; i+4 <= len(src); i += 4 {
		w := uint64(binary.BigEndian.Uint32(src[i:]))
		w = (w | w<<16) & 0x0000ffff0000ffff
		w = (w | w<<8) & 0x00ff00ff00ff00ff
		w = (w<<4)&0x0f000f000f000f00 | w&0x000f000f000f000f
		letters := (w + 0x0606060606060606) >> 4 & 0x0101010101010101
		binary.BigEndian.PutUint64(dst[2*i:], w+0x3030303030303030+7*letters)
	}
	return 2 * len(src)
}

// v2KV is one parameter.
type v2KV struct{ k, v string }

// v2StackFields is how many parameters v2Sorter sorts on its user's stack;
// real documents have fewer than 32.
const v2StackFields = 32

// v2Sorter puts parameters in name order without allocating for ordinary
// documents. A v2Sorter lives on its user's stack.
type v2Sorter struct {
	keys [v2StackFields]uint64
	kv   [v2StackFields]v2KV
}

// sort collects params (for signing, those v2SignsParam accepts; otherwise
// those named as XML names) and returns them in name order, with the total
// length of names and values plus two bytes per parameter.
func (st *v2Sorter) sort(params map[string]string, signing bool) (sorted []v2KV, size int) {
	n, size, ok := v2Collect(st.keys[:], st.kv[:], params, signing)
	if ok {
		in := st.kv
		for i, key := range st.keys[:n] {
			st.kv[i] = in[uint8(key)]
		}
		return st.kv[:n], size
	}
	// Not a real document: sort the strings themselves.
	for name, v := range params {
		if v2Collects(name, v, signing) {
			sorted = append(sorted, v2KV{name, v})
			size += len(name) + len(v) + 2
		}
	}
	slices.SortFunc(sorted, func(a, b v2KV) int { return strings.Compare(a.k, b.k) })
	return sorted, size
}

// v2Collects reports whether a parameter is signed or, if !signing, written
// to XML.
func v2Collects(name, v string, signing bool) bool {
	if signing {
		return v2SignsParam(name, v)
	}
	return validXMLName(name)
}

// v2Collect stores in kv the parameters that v2Collects accepts, and in keys
// their names' order: each key holds the first seven bytes of a name,
// zero-padded, above its 8-bit index in kv, and is insertion-sorted as the
// map is read. Zero-padded prefixes that differ order their names the same
// way as the names do, so only equal prefixes (coupon_fee_0, coupon_fee_1,
// ...) compare whole names. It returns how many it stored and the total
// length of their names and values plus two bytes each, or ok false, having
// stored nothing, when params is larger than kv (at most 256).
func v2Collect(keys []uint64, kv []v2KV, params map[string]string, signing bool) (n, size int, ok bool) {
	if len(params) > len(kv) || len(keys) < len(kv) {
		return 0, 0, false
	}
	for name, v := range params {
		if !v2Collects(name, v, signing) {
			continue
		}
		kv[n] = v2KV{name, v}
		key := v2NamePrefix(name)<<8 | uint64(n)
		j := n
		for ; j > 0 && keys[j-1] > key; j-- {
			keys[j] = keys[j-1]
		}
		// keys[j-1] has a smaller prefix, or the same and a smaller index.
		for ; j > 0 && keys[j-1]>>8 == key>>8 && kv[uint8(keys[j-1])].k > name; j-- {
			keys[j] = keys[j-1]
		}
		keys[j] = key
		n++
		size += len(name) + len(v) + 2
	}
	return n, size, true
}

// v2NamePrefix returns the first seven bytes of s, zero-padded, as a
// big-endian integer.
func v2NamePrefix(s string) uint64 {
	if len(s) >= 8 {
		return bits.ReverseBytes64(load64(s, 0)) >> 8
	}
	var p uint64
	for i := 0; i < len(s) && i < 7; i++ {
		p |= uint64(s[i]) << (48 - 8*i)
	}
	return p
}
