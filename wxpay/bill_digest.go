package wxpay

import (
	"crypto/sha1" //nolint:gosec // WeChat's bill digest is SHA1; it guards integrity, not secrecy
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// DigestReader passes a bill through while hashing it, and checks the
// digest when the underlying reader ends: at that point Read returns
// io.EOF if the SHA1 of everything read equals hash_value, and an error
// wrapping ErrBillDigest otherwise (with the bytes of that last read, as
// usual for io.Reader). Errors are sticky: every later Read returns the
// same one. Wrap the plain bill, after un-gzipping: WeChat's digest is of
// the original file. A DigestReader is not safe for concurrent use.
type DigestReader struct {
	r        io.Reader
	h        hash.Hash
	want     [sha1.Size]byte
	n        int64
	err      error
	verified bool
}

// NewDigestReader returns a DigestReader of r checking hashType and
// hashValue as a BillInfo gives them (SHA1, 40 hexadecimal digits in either
// case). Any other hash type or value fails with ErrBillDigest.
func NewDigestReader(r io.Reader, hashType, hashValue string) (*DigestReader, error) {
	if !strings.EqualFold(hashType, HashTypeSHA1) {
		return nil, fmt.Errorf("%w: hash_type %.16q is not SHA1", ErrBillDigest, hashType)
	}
	d := &DigestReader{r: r, h: sha1.New()} //nolint:gosec // see the import
	if !isHex(hashValue, 2*sha1.Size) {
		return nil, fmt.Errorf("%w: hash_value is not %d hexadecimal digits", ErrBillDigest, 2*sha1.Size)
	}
	if _, err := hex.Decode(d.want[:], []byte(hashValue)); err != nil {
		return nil, fmt.Errorf("%w: hash_value: %w", ErrBillDigest, err)
	}
	return d, nil
}

// Read reads from the underlying reader; see DigestReader.
func (d *DigestReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.r.Read(p)
	if n > 0 {
		d.h.Write(p[:n])
		d.n += int64(n)
	}
	switch {
	case err == io.EOF:
		var got [sha1.Size]byte
		d.h.Sum(got[:0])
		if subtle.ConstantTimeCompare(got[:], d.want[:]) != 1 {
			d.err = fmt.Errorf("%w: SHA1 of the %d bytes read is %x, hash_value is %x", ErrBillDigest, d.n, got, d.want)
			return n, d.err
		}
		d.verified = true
		d.err = io.EOF
	case err != nil:
		d.err = err
	}
	return n, err
}

// Verified reports whether the input ended and its digest matched.
func (d *DigestReader) Verified() bool { return d.verified }

// Size returns the number of bytes read so far.
func (d *DigestReader) Size() int64 { return d.n }
