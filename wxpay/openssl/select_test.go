package openssl_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

func TestSelect(t *testing.T) {
	t.Run("go is crypto/rsa and never loads libcrypto", func(t *testing.T) {
		b, err := openssl.Select("go", "/nonexistent/libcrypto.so.3")
		if err != nil {
			t.Fatal(err)
		}
		if b != wxpay.GoBackend {
			t.Fatalf("Select(go) = %s, want wxpay.GoBackend", b.Name())
		}
	})

	t.Run("auto prefers openssl when cgo is available", func(t *testing.T) {
		b, err := openssl.Select("auto", "")
		if err != nil {
			t.Fatalf("auto must not fail: %v", err)
		}
		want := "go"
		if cgoBuild {
			want = "openssl"
		}
		if b.Name() != want {
			t.Fatalf("Select(auto).Name() = %q, want %q", b.Name(), want)
		}
		if !cgoBuild && b != wxpay.GoBackend {
			t.Fatal("Select(auto) without cgo is not wxpay.GoBackend")
		}
	})

	t.Run("openssl loads libcrypto or fails with ErrUnavailable", func(t *testing.T) {
		b, err := openssl.Select("openssl", "")
		if !cgoBuild {
			if !errors.Is(err, openssl.ErrUnavailable) || b != nil {
				t.Fatalf("Select(openssl) without cgo = %v, %v; want nil, ErrUnavailable", b, err)
			}
			if v := openssl.Version(); v != "" {
				t.Fatalf("Version() without cgo = %q, want empty", v)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Name() != "openssl" {
			t.Fatalf("Name() = %q", b.Name())
		}
		if v := openssl.Version(); !strings.HasPrefix(v, "OpenSSL 3") {
			t.Fatalf("Version() = %q, want OpenSSL 3.x", v)
		}
	})

	for _, name := range []string{"", "rsa", "OpenSSL", "Go", "boring", " auto"} {
		t.Run("unknown name "+strconv.Quote(name)+" is an error naming it", func(t *testing.T) {
			b, err := openssl.Select(name, "")
			if err == nil || b != nil {
				t.Fatalf("Select(%q) = %v, %v; want an error", name, b, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Fatalf("error %q does not name %q", err, name)
			}
			if errors.Is(err, openssl.ErrUnavailable) {
				t.Fatalf("unknown name reported as ErrUnavailable: %v", err)
			}
		})
	}
}

func TestNewWithoutCgoIsUnavailable(t *testing.T) {
	if cgoBuild {
		t.Skip("cgo build: see TestLoadingInFreshProcess")
	}
	for _, path := range []string{"", "libcrypto.so.3"} {
		if b, err := openssl.New(path); b != nil || !errors.Is(err, openssl.ErrUnavailable) {
			t.Fatalf("New(%q) = %v, %v; want nil, ErrUnavailable", path, b, err)
		}
	}
}
