package wxpay

import (
	"encoding/binary"
	"unsafe"
)

// This file holds the package's only use of unsafe.

// load64 returns the 8 bytes of s at i as a little-endian word. The caller
// guarantees i+8 <= len(s). Strings are immutable and the bytes are only
// read, so viewing them as a byte slice is safe; it lets the compiler emit
// one 64-bit load instead of eight byte loads with bounds checks.
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), len(s))[i : i+8])
}
