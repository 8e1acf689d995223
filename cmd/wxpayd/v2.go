package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/pkcs12"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/ingress"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// The merchant's API (WXPAY_API): APIv3, or APIv2 for merchants that have
// only APIv2 credentials. In APIv2 mode the order actors call WeChat
// through client.V2Client (XML, MD5 or HMAC-SHA256 signs, refunds over TLS
// with the API client certificate), buyers get v2 paySigns, and
// notifications arrive at /wxpay/v2/notify and /wxpay/v2/refund-notify;
// the APIv3 key, the merchant RSA key and WeChat Pay's keys are not used.

const (
	apiV2 = "v2"
	apiV3 = "v3"
)

// resolveAPI settles WXPAY_API in v: "v2" or "v3" as given, or, when
// empty, v2 if only APIv2 credentials are set (WXPAY_APIV2_KEY_FILE, and
// neither WXPAY_APIV3_KEY_FILE nor WXPAY_MERCHANT_KEY_FILE), else v3.
func resolveAPI(v values) error {
	switch v["WXPAY_API"] {
	case apiV2, apiV3:
		return nil
	case "":
		v["WXPAY_API"] = apiV3
		if v["WXPAY_APIV2_KEY_FILE"] != "" && v["WXPAY_APIV3_KEY_FILE"] == "" && v["WXPAY_MERCHANT_KEY_FILE"] == "" {
			v["WXPAY_API"] = apiV2
		}
		return nil
	}
	return cfgErr("WXPAY_API: %q: want v2 or v3", v["WXPAY_API"])
}

// v3OnlySettings are required on APIv3 and unused on APIv2.
var v3OnlySettings = []string{"WXPAY_MERCHANT_KEY_FILE", "WXPAY_MERCHANT_SERIAL", "WXPAY_APIV3_KEY_FILE"}

// requiredFor is requiredSettings for the API v["WXPAY_API"]: on APIv2 the
// APIv2 key instead of the APIv3 credentials (the client certificate is
// checked by loadV2, as it comes as a pair or a .p12).
func requiredFor(v values) []string {
	if v["WXPAY_API"] != apiV2 {
		return requiredSettings
	}
	out := []string{"WXPAY_APIV2_KEY_FILE"}
	for _, s := range requiredSettings {
		if !slices.Contains(v3OnlySettings, s) {
			out = append(out, s)
		}
	}
	return out
}

// loadV2 completes an APIv2 identity: the merchant (appid, mch_id, the
// APIv2 key readSecrets read, WXPAY_V2_SIGN_TYPE), the API client
// certificate (WXPAY_APICLIENT_CERT_FILE with WXPAY_APICLIENT_KEY_FILE, or
// WXPAY_APICLIENT_P12_FILE, whose password is the mch_id) and the extra CA
// roots (WXPAY_API_CA_FILE).
func (id *identity) loadV2(v values) error {
	st := wxpay.V2SignType(v["WXPAY_V2_SIGN_TYPE"])
	if st != wxpay.V2SignMD5 && st != wxpay.V2SignHMACSHA256 {
		return cfgErr("WXPAY_V2_SIGN_TYPE: %q: want MD5 or HMAC-SHA256", st)
	}
	if id.v2key == nil { // unreachable: requiredFor lists WXPAY_APIV2_KEY_FILE
		return cfgErr("WXPAY_APIV2_KEY_FILE: required on APIv2")
	}
	id.v2 = &wxpay.V2Merchant{AppID: v["WXPAY_APPID"], MchID: v["WXPAY_MCHID"], Key: id.v2key, SignType: st}
	if err := id.v2.Validate(); err != nil {
		return configError{err}
	}
	var err error
	if id.clientCert, err = clientCertificate(v); err != nil {
		return err
	}
	return nil
}

// clientCertificate reads the merchant's API client certificate.
func clientCertificate(v values) (*tls.Certificate, error) {
	certFile, keyFile, p12File := v["WXPAY_APICLIENT_CERT_FILE"], v["WXPAY_APICLIENT_KEY_FILE"], v["WXPAY_APICLIENT_P12_FILE"]
	var pair tls.Certificate
	switch {
	case p12File != "" && (certFile != "" || keyFile != ""):
		return nil, cfgErr("WXPAY_APICLIENT_P12_FILE: set it or WXPAY_APICLIENT_CERT_FILE and WXPAY_APICLIENT_KEY_FILE, not both")
	case p12File != "":
		b, err := os.ReadFile(p12File)
		if err != nil {
			return nil, cfgErr("WXPAY_APICLIENT_P12_FILE: %w", err)
		}
		if pair, err = fromP12(b, v["WXPAY_MCHID"]); err != nil {
			return nil, cfgErr("WXPAY_APICLIENT_P12_FILE: %s: %w", p12File, err)
		}
	case certFile != "" && keyFile != "":
		var err error
		if pair, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, cfgErr("WXPAY_APICLIENT_CERT_FILE, WXPAY_APICLIENT_KEY_FILE: %w", err)
		}
	case certFile != "" || keyFile != "":
		return nil, cfgErr("WXPAY_APICLIENT_CERT_FILE and WXPAY_APICLIENT_KEY_FILE go together")
	default:
		return nil, cfgErr("APIv2 refunds need the merchant API client certificate: set WXPAY_APICLIENT_CERT_FILE and WXPAY_APICLIENT_KEY_FILE (apiclient_cert.pem, apiclient_key.pem), or WXPAY_APICLIENT_P12_FILE (apiclient_cert.p12)")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, cfgErr("API client certificate: %w", err)
	}
	if time.Now().After(leaf.NotAfter) {
		return nil, cfgErr("API client certificate: expired on %s; download a new one in the merchant platform", leaf.NotAfter.Format(time.DateOnly))
	}
	pair.Leaf = leaf
	return &pair, nil
}

// fromP12 reads a merchant's apiclient_cert.p12 (password: the mch_id):
// the key and the certificate that holds its public key.
func fromP12(b []byte, password string) (tls.Certificate, error) {
	blocks, err := pkcs12.ToPEM(b, password)
	if err != nil {
		return tls.Certificate{}, err
	}
	var keyPEM []byte
	var certs [][]byte
	for _, blk := range blocks {
		switch blk.Type {
		case "PRIVATE KEY":
			keyPEM = pem.EncodeToMemory(blk)
		case "CERTIFICATE":
			certs = append(certs, pem.EncodeToMemory(blk))
		}
	}
	if keyPEM == nil || len(certs) == 0 {
		return tls.Certificate{}, errors.New("no key and certificate in the file")
	}
	for _, c := range certs {
		if pair, err := tls.X509KeyPair(c, keyPEM); err == nil {
			return pair, nil
		}
	}
	return tls.Certificate{}, errors.New("no certificate in the file matches its key")
}

// apiRoots is WXPAY_API_CA_FILE added to the system roots, nil (the system
// roots) when it is empty.
func apiRoots(v values) (*x509.CertPool, error) {
	f := v["WXPAY_API_CA_FILE"]
	if f == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, cfgErr("WXPAY_API_CA_FILE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, cfgErr("WXPAY_API_CA_FILE: %s holds no PEM certificate", f)
	}
	return pool, nil
}

// v2RefundNotifyURL is WXPAY_V2_REFUND_NOTIFY_URL, or WXPAY_NOTIFY_URL with
// its last path segment "notify" replaced by "refund-notify"
// (…/wxpay/v2/notify → …/wxpay/v2/refund-notify).
func v2RefundNotifyURL(v values) (string, error) {
	u := v["WXPAY_V2_REFUND_NOTIFY_URL"]
	if u == "" {
		base, ok := strings.CutSuffix(v["WXPAY_NOTIFY_URL"], "/notify")
		if !ok {
			return "", cfgErr("WXPAY_V2_REFUND_NOTIFY_URL: required when WXPAY_NOTIFY_URL does not end in /notify")
		}
		u = base + "/refund-notify"
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") || strings.Contains(u, "?") {
		return "", cfgErr("WXPAY_V2_REFUND_NOTIFY_URL: must be an http(s) URL without a query")
	}
	return u, nil
}

// newV2Client builds the APIv2 client (WXPAY_API_BASE, WXPAY_V2_SECAPI_BASE,
// WXPAY_V2_SPBILL_CREATE_IP, the refund notify URL), reporting every call
// to obs. A v3 notify URL is refused: APIv2 notifications are XML.
func newV2Client(v values, id *identity, obs client.Observer) (*client.V2Client, error) {
	if strings.HasSuffix(v["WXPAY_NOTIFY_URL"], "/wxpay/v3/notify") {
		return nil, cfgErr("WXPAY_NOTIFY_URL: APIv2 notifications are XML: use wxpayd's /wxpay/v2/notify")
	}
	refundURL, err := v2RefundNotifyURL(v)
	if err != nil {
		return nil, err
	}
	roots, err := apiRoots(v)
	if err != nil {
		return nil, err
	}
	c, err := client.NewV2(client.V2Config{
		Config: client.Config{BaseURL: v["WXPAY_API_BASE"]}, SecureBaseURL: v["WXPAY_V2_SECAPI_BASE"],
		ClientCert: id.clientCert, RootCAs: roots, ClientIP: v["WXPAY_V2_SPBILL_CREATE_IP"], RefundNotifyURL: refundURL,
	}, id.v2, client.WithObserver(obs))
	if err != nil {
		return nil, cfgErr("WXPAY_API_BASE, WXPAY_V2_SECAPI_BASE, WXPAY_V2_SPBILL_CREATE_IP: %w", err)
	}
	return c, nil
}

// paySigner signs wx.requestPayment: the APIv2 merchant or the APIv3
// signer.
func (id *identity) paySigner() ingress.PaySigner {
	if id.v2 != nil {
		return id.v2
	}
	return id.signer
}

// notifyParser checks APIv3 notifications; nil for an APIv2 merchant, who
// has no APIv3 key (/wxpay/v3/notify then answers 404).
func (id *identity) notifyParser() *wxpay.NotifyParser {
	if id.v2 != nil {
		return nil
	}
	return wxpay.NewNotifyParser(id.verifier, id.aead)
}

// wechat is the WeChat client the actors call: APIv2's or APIv3's.
func (a *app) wechat() actors.WeChat {
	if a.pay2 != nil {
		return a.pay2
	}
	return a.pay
}

// reconcileClient is the WeChat client of the daily reconciliation: the
// APIv3 client, or on APIv2 v2NoBills, whose bill downloads fail (APIv2's
// /pay/downloadbill is not implemented), so each day's run is recorded
// failed with that reason instead of reconciling.
func (a *app) reconcileClient() reconcile.WeChat {
	if a.pay2 != nil {
		return v2NoBills{a.pay2}
	}
	return a.pay
}

// errV2Bills is why reconciliation does not run on APIv2.
var errV2Bills = fmt.Errorf("reconcile: %w: the daily bill of an APIv2 merchant (/pay/downloadbill) is not implemented", client.ErrV2Unsupported)

// v2NoBills is the APIv2 client for the reconciler: queries work, bills
// do not.
type v2NoBills struct{ *client.V2Client }

func (v2NoBills) TradeBill(context.Context, string, wxpay.BillType, bool) (wxpay.BillInfo, error) {
	return wxpay.BillInfo{}, errV2Bills
}

func (v2NoBills) DownloadBill(context.Context, wxpay.BillInfo) (io.ReadCloser, error) {
	return nil, errV2Bills
}

// shutdownWeChat shuts the WeChat Pay client down (either API).
func (a *app) shutdownWeChat(ctx context.Context) error {
	var errs []error
	if a.pay != nil {
		errs = append(errs, a.pay.Close(ctx))
	}
	if a.pay2 != nil {
		errs = append(errs, a.pay2.Close(ctx))
	}
	return errors.Join(errs...)
}

// logAPI logs the merchant API at start, and the APIv3 settings an APIv2
// merchant set in vain.
func (a *app) logAPI(v values, id *identity) {
	if id.v2 == nil {
		a.log.Info("merchant api", "api", apiV3)
		return
	}
	var unused []string
	for _, s := range append(v3OnlySettings, "WXPAY_PUBLIC_KEY_FILE", "WXPAY_PLATFORM_CERT_FILES", "WXPAY_CERT_REFRESH") {
		if v[s] != "" {
			unused = append(unused, s)
		}
	}
	a.log.Info("merchant api", "api", apiV2, "sign_type", string(id.v2.SignType), "client_cert_expires",
		id.clientCert.Leaf.NotAfter.Format(time.DateOnly), "unused_v3_settings", fmt.Sprint(unused))
}
