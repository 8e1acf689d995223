package main

import (
	"crypto/tls"
	"log/slog"
	"os"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// identity is what wxpayd signs and checks with, read from its files once
// at start: the merchant's signer, WeChat Pay's keys, the API keys and the
// server's own secrets. Nothing in it is ever logged. On APIv2 (v2 set,
// see v2.go) the APIv3 fields are nil.
type identity struct {
	signer   *wxpay.Signer   // signs requests to WeChat Pay and wx.requestPayment parameters
	keys     *wxpay.KeySet   // WeChat Pay's public key and/or platform certificates
	verifier *wxpay.Verifier // checks WeChat Pay's answers and notifications with keys
	aead     *wxpay.AEAD     // the APIv3 key: decrypts notifications and certificates
	v2key    *wxpay.V2Key    // nil: WXPAY_APIV2_KEY_FILE is not set
	// v2 is the APIv2 merchant and clientCert its API client certificate
	// (WXPAY_API=v2); both nil on APIv3.
	v2         *wxpay.V2Merchant
	clientCert *tls.Certificate
	// refreshEvery is how often the platform certificates are downloaded
	// again (WXPAY_CERT_REFRESH); 0: never.
	refreshEvery  time.Duration
	appSecret     []byte // the Mini Program AppSecret, for jscode2session
	adminToken    []byte // the /admin bearer token
	sessionSecret []byte // signs buyer session tokens
	shopToken     []byte // the checkout API's bearer token; nil: WXPAYD_SHOP_TOKEN_FILE is not set
}

// loadIdentity chooses the RSA backend and reads every key and secret. Each
// error is a configError naming the setting, never the content.
func loadIdentity(v values, log *slog.Logger) (*identity, error) {
	if v["WXPAY_API"] == apiV2 { // no RSA key, no WeChat Pay key: the APIv2 key signs
		id := &identity{}
		if err := id.readSecrets(v); err != nil {
			return nil, err
		}
		if err := id.loadV2(v); err != nil {
			return nil, err
		}
		return id, nil
	}
	// RSA backend: chosen once, logged.
	backend, err := openssl.Select(v["WXPAYD_RSA_BACKEND"], v["WXPAYD_OPENSSL_LIB"])
	if err != nil {
		return nil, cfgErr("WXPAYD_RSA_BACKEND: %w", err)
	}
	log.Info("rsa backend", "backend", backend.Name(), "openssl", openssl.Version())

	id := &identity{}
	if id.signer, err = merchantSigner(v, backend); err != nil {
		return nil, err
	}
	if id.keys, id.refreshEvery, err = wechatKeys(v, backend); err != nil {
		return nil, err
	}
	if err := id.readSecrets(v); err != nil {
		return nil, err
	}
	id.verifier = wxpay.NewVerifier(id.keys)
	return id, nil
}

// merchantSigner reads the merchant API private key
// (WXPAY_MERCHANT_KEY_FILE) into backend and makes the signer.
func merchantSigner(v values, backend wxpay.Backend) (*wxpay.Signer, error) {
	keyPEM, err := os.ReadFile(v["WXPAY_MERCHANT_KEY_FILE"])
	if err != nil {
		return nil, cfgErr("WXPAY_MERCHANT_KEY_FILE: %w", err)
	}
	rk, err := wxpay.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, cfgErr("WXPAY_MERCHANT_KEY_FILE: %w", err)
	}
	mk, err := backend.NewPrivateKey(rk)
	if err != nil {
		return nil, cfgErr("WXPAY_MERCHANT_KEY_FILE: %w", err)
	}
	signer, err := wxpay.NewSigner(v["WXPAY_MCHID"], v["WXPAY_MERCHANT_SERIAL"], mk)
	if err != nil {
		return nil, configError{err}
	}
	return signer, nil
}

// wechatKeys reads WeChat Pay's keys: the public key (WXPAY_PUBLIC_KEY_FILE
// with WXPAY_PUBLIC_KEY_ID) and/or the platform certificates
// (WXPAY_PLATFORM_CERT_FILES), and the certificate refresh interval. At
// least one key is required, unless certificates are refreshed: then the
// first refresh may bring them.
func wechatKeys(v values, backend wxpay.Backend) (*wxpay.KeySet, time.Duration, error) {
	keys := wxpay.NewKeySet(backend)
	if v["WXPAY_PUBLIC_KEY_FILE"] != "" || v["WXPAY_PUBLIC_KEY_ID"] != "" {
		if err := v.required("WXPAY_PUBLIC_KEY_FILE", "WXPAY_PUBLIC_KEY_ID"); err != nil {
			return nil, 0, configError{err}
		}
		b, err := os.ReadFile(v["WXPAY_PUBLIC_KEY_FILE"])
		if err != nil {
			return nil, 0, cfgErr("WXPAY_PUBLIC_KEY_FILE: %w", err)
		}
		pk, err := wxpay.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, 0, cfgErr("WXPAY_PUBLIC_KEY_FILE: %w", err)
		}
		if err := keys.AddPublicKey(v["WXPAY_PUBLIC_KEY_ID"], pk); err != nil {
			return nil, 0, cfgErr("WXPAY_PUBLIC_KEY_ID: %w", err)
		}
	}
	for _, f := range v.list("WXPAY_PLATFORM_CERT_FILES") {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, cfgErr("WXPAY_PLATFORM_CERT_FILES: %w", err)
		}
		c, err := wxpay.ParseCertificatePEM(b)
		if err != nil {
			return nil, 0, cfgErr("WXPAY_PLATFORM_CERT_FILES: %s: %w", f, err)
		}
		if err := keys.AddCertificate(c); err != nil {
			return nil, 0, cfgErr("WXPAY_PLATFORM_CERT_FILES: %s: %w", f, err)
		}
	}
	refreshEvery, err := certRefresh(v)
	if err != nil {
		return nil, 0, err
	}
	if keys.Len() == 0 && refreshEvery == 0 {
		return nil, 0, cfgErr("no WeChat Pay key: set WXPAY_PUBLIC_KEY_FILE and WXPAY_PUBLIC_KEY_ID, or WXPAY_PLATFORM_CERT_FILES")
	}
	return keys, refreshEvery, nil
}

// certRefresh is WXPAY_CERT_REFRESH as an interval: empty, "false" or "0"
// is 0 (off); "true" or "1" is client.DefaultRefreshInterval; anything else
// must be a positive duration.
func certRefresh(v values) (time.Duration, error) {
	switch v["WXPAY_CERT_REFRESH"] {
	case "", "false", "0":
		return 0, nil
	case "true", "1":
		return client.DefaultRefreshInterval, nil
	}
	d, err := v.duration("WXPAY_CERT_REFRESH")
	if err != nil {
		return 0, configError{err}
	}
	return d, nil
}

// readSecrets reads the APIv3 key (not on APIv2), the APIv2 key (optional
// on APIv3), the AppSecret, the admin token and the session secret, each
// with its minimum length.
func (id *identity) readSecrets(v values) error {
	var err error
	if v["WXPAY_API"] != apiV2 {
		apiV3Key, err := v.secret("WXPAY_APIV3_KEY_FILE", 32)
		if err != nil {
			return configError{err}
		}
		if id.aead, err = wxpay.NewAEAD(apiV3Key); err != nil {
			return cfgErr("WXPAY_APIV3_KEY_FILE: %w", err)
		}
	}
	if v["WXPAY_APIV2_KEY_FILE"] != "" {
		b, err := v.secret("WXPAY_APIV2_KEY_FILE", 1)
		if err != nil {
			return configError{err}
		}
		if id.v2key, err = wxpay.NewV2Key(b); err != nil {
			return cfgErr("WXPAY_APIV2_KEY_FILE: %w", err)
		}
	}
	if id.appSecret, err = v.secret("WXPAY_APP_SECRET_FILE", 1); err != nil {
		return configError{err}
	}
	if id.adminToken, err = v.secret("WXPAYD_ADMIN_TOKEN_FILE", 16); err != nil {
		return configError{err}
	}
	if id.sessionSecret, err = v.secret("WXPAYD_SESSION_SECRET_FILE", 32); err != nil {
		return configError{err}
	}
	if v["WXPAYD_SHOP_TOKEN_FILE"] != "" {
		if id.shopToken, err = v.secret("WXPAYD_SHOP_TOKEN_FILE", 16); err != nil {
			return configError{err}
		}
	}
	return nil
}
