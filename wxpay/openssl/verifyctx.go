//go:build cgo

package openssl

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

// A verify context kept per key: golang-fips builds and frees an
// EVP_PKEY_CTX on every call (~3 µs, a fifth of an RSA-2048 verify). The
// functions come from the libcrypto golang-fips already loaded, through
// dlsym, so the binary still starts without libcrypto (no link-time
// dependency). They are OpenSSL 3 functions; with anything else wx_init
// fails and golang-fips' path is used.

typedef void wx_pkey;
typedef void wx_ctx;
typedef void wx_md;

static wx_pkey *(*p_d2i_PUBKEY)(wx_pkey **, const unsigned char **, long);
static void (*p_pkey_free)(wx_pkey *);
static wx_ctx *(*p_ctx_new)(wx_pkey *, void *);
static void (*p_ctx_free)(wx_ctx *);
static int (*p_verify_init)(wx_ctx *);
static int (*p_set_padding)(wx_ctx *, int);
static int (*p_set_md)(wx_ctx *, const wx_md *);
static const wx_md *(*p_sha256)(void);
static int (*p_verify)(wx_ctx *, const unsigned char *, size_t, const unsigned char *, size_t);
static void (*p_err_clear)(void);

static int wx_init(const char *lib) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) return -1;
	p_d2i_PUBKEY = dlsym(h, "d2i_PUBKEY");
	p_pkey_free = dlsym(h, "EVP_PKEY_free");
	p_ctx_new = dlsym(h, "EVP_PKEY_CTX_new");
	p_ctx_free = dlsym(h, "EVP_PKEY_CTX_free");
	p_verify_init = dlsym(h, "EVP_PKEY_verify_init");
	p_set_padding = dlsym(h, "EVP_PKEY_CTX_set_rsa_padding");      // a function since 3.0
	p_set_md = dlsym(h, "EVP_PKEY_CTX_set_signature_md");         // a function since 3.0
	p_sha256 = dlsym(h, "EVP_sha256");
	p_verify = dlsym(h, "EVP_PKEY_verify");
	p_err_clear = dlsym(h, "ERR_clear_error");
	if (!p_d2i_PUBKEY || !p_pkey_free || !p_ctx_new || !p_ctx_free || !p_verify_init ||
	    !p_set_padding || !p_set_md || !p_sha256 || !p_verify || !p_err_clear) return -2;
	return 0;
}

// wx_new_ctx returns a context ready to verify RSASSA-PKCS1-v1_5 SHA-256
// signatures with the SubjectPublicKeyInfo in der, or NULL.
static wx_ctx *wx_new_ctx(const unsigned char *der, long n) {
	const unsigned char *p = der;
	wx_pkey *k = p_d2i_PUBKEY(NULL, &p, n);
	if (k == NULL) { p_err_clear(); return NULL; }
	wx_ctx *c = p_ctx_new(k, NULL);
	p_pkey_free(k); // the context holds its own reference
	if (c == NULL) { p_err_clear(); return NULL; }
	if (p_verify_init(c) != 1 || p_set_padding(c, 1) != 1 || p_set_md(c, p_sha256()) != 1) {
		p_ctx_free(c);
		p_err_clear();
		return NULL;
	}
	return c;
}

static int wx_verify(wx_ctx *c, const unsigned char *sig, size_t siglen, const unsigned char *dgst) {
	int ok = p_verify(c, sig, siglen, dgst, 32) == 1;
	if (!ok) p_err_clear(); // leave no stale error on this thread
	return ok;
}

static void wx_free(wx_ctx *c) { p_ctx_free(c); }
*/
import "C"

import (
	"crypto/rsa"
	"crypto/x509"
	"sync"
	"unsafe"
)

var fastVerify struct {
	once sync.Once
	ok   bool
}

// fastVerifyReady resolves the functions once, from the library golang-fips
// loaded.
func fastVerifyReady(file string) bool {
	fastVerify.once.Do(func() {
		cs := C.CString(file)
		defer C.free(unsafe.Pointer(cs))
		fastVerify.ok = C.wx_init(cs) == 0
	})
	return fastVerify.ok
}

// ctxPool keeps initialised verify contexts of one key. A context is used
// by one goroutine at a time; the pool holds at most cap(free) idle ones
// and frees the rest. Keys live as long as the key set, so the pool does
// too.
type ctxPool struct {
	der  []byte
	free chan unsafe.Pointer // *wx_ctx
}

func newCtxPool(k *rsa.PublicKey) *ctxPool {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil
	}
	p := &ctxPool{der: der, free: make(chan unsafe.Pointer, 16)}
	c := p.get()
	if c == nil {
		return nil
	}
	p.put(c)
	return p
}

func (p *ctxPool) get() unsafe.Pointer {
	select {
	case c := <-p.free:
		return c
	default:
		return C.wx_new_ctx((*C.uchar)(unsafe.Pointer(&p.der[0])), C.long(len(p.der)))
	}
}

func (p *ctxPool) put(c unsafe.Pointer) {
	select {
	case p.free <- c:
	default:
		C.wx_free(c)
	}
}

// verify reports whether sig is a valid signature of the 32-byte digest.
// ok is false when no context could be made (the caller falls back).
func (p *ctxPool) verify(digest *[32]byte, sig []byte) (valid, ok bool) {
	c := p.get()
	if c == nil {
		return false, false
	}
	valid = C.wx_verify(c, (*C.uchar)(unsafe.Pointer(&sig[0])), C.size_t(len(sig)),
		(*C.uchar)(unsafe.Pointer(&digest[0]))) == 1
	p.put(c)
	return valid, true
}
