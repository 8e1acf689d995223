package sim

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// File names in a keys directory (keygen writes them; serve reads them).
const (
	FileMerchantKey    = "merchant_key.pem"     // merchant API private key, PKCS#8 (secret)
	FileMerchantCert   = "merchant_cert.pem"    // self-signed; its serial is the merchant serial
	FileWechatPayKey   = "wechatpay_key.pem"    // WeChat Pay public-key mode: private half (secret, simulator only)
	FileWechatPayPub   = "wechatpay_public.pem" // WeChat Pay public key, id in sim.json
	FilePlatformKey    = "platform_key.pem"     // platform certificate's private key (secret, simulator only)
	FilePlatformCert   = "platform_cert.pem"    // platform certificate (certificate mode)
	FileAPIv3Key       = "apiv3.key"            // 32 bytes (secret)
	FileAPIv2Key       = "apiv2.key"            // 32 bytes (secret)
	FileAppSecret      = "app_secret"           // Mini Program AppSecret (secret)
	FileAPIClientCert  = "apiclient_cert.pem"   // the merchant API certificate (= merchant_cert.pem), issued by the sim's CA: APIv2's TLS client certificate
	FileAPIClientKey   = "apiclient_key.pem"    // its key (= merchant_key.pem, secret)
	FileCACert         = "wxpaysim_ca.pem"      // the sim's CA: issues the merchant certificate and the TLS listener's certificate
	FileCAKey          = "wxpaysim_ca_key.pem"  // the CA's key (secret, simulator only)
	FileEnv            = "wxpay.env"            // WXPAY_* for wxpayd
	FileSimJSON        = "sim.json"             // identity for serve
	DefaultAppID       = "wx8888888888888888"   // the documentation's sample AppID
	DefaultMchID       = "1900000109"           // the documentation's sample mchid
	DefaultNotifyURL   = "http://127.0.0.1:8080/wxpay/v3/notify"
	DefaultV2NotifyURL = "http://127.0.0.1:8080/wxpay/v2/notify"
	DefaultKeyBits     = 2048
	secretMode         = 0o600
	publicMode         = 0o644
	dirMode            = 0o700
	keygenCertValidity = 5 * 365 * 24 * time.Hour // WeChat's certificates live 5 years
)

// Identity is a development merchant and the WeChat side that serves it:
// everything keygen writes. Keys are crypto/rsa values; New prepares them
// with the configured backend. An Identity is read-only once built.
type Identity struct {
	AppID     string
	MchID     string
	AppSecret string
	// MerchantKey is the merchant's private key. Only clients need it; the
	// simulator verifies with MerchantCert's public key.
	MerchantKey    *rsa.PrivateKey
	MerchantCert   *x509.Certificate
	MerchantSerial string
	// WechatPayKey is the key pair of public-key mode, under PublicKeyID.
	WechatPayKey *rsa.PrivateKey
	PublicKeyID  string
	// PlatformKey and PlatformCert are certificate mode's key pair.
	PlatformKey    *rsa.PrivateKey
	PlatformCert   *x509.Certificate
	PlatformSerial string
	APIv3Key       []byte // 32 bytes
	APIv2Key       []byte // 32 bytes
	// CAKey and CACert are the simulator's certificate authority (WeChat's
	// CA for merchant API certificates): it issued MerchantCert, and the
	// TLS listener's certificate, so both sides of APIv2's client
	// certificate TLS check out. Nil for a keys directory written before
	// keygen wrote them: the TLS listener is then off.
	CAKey  *ecdsa.PrivateKey
	CACert *x509.Certificate
	// TLSAddr is where keygen told the merchant the TLS listener is
	// (--sim-tls-addr, in sim.json); "" for an identity made in memory
	// without one. Its host is named in the listener's certificate.
	TLSAddr string
}

// KeygenOptions parameterise a new Identity and its wxpay.env.
type KeygenOptions struct {
	AppID     string // default DefaultAppID
	MchID     string // default DefaultMchID
	SimAddr   string // host:port wxpayd reaches the simulator at; default DefaultListen
	NotifyURL string // wxpayd's notification URL; default DefaultNotifyURL (DefaultV2NotifyURL for API v2)
	Bits      int    // RSA modulus bits; default 2048
	// SimTLSAddr is host:port wxpayd reaches the simulator's TLS listener
	// (APIv2 /secapi/) at; default DefaultTLSListen.
	SimTLSAddr string
	// API is the merchant's API that wxpay.env configures: "v3" (default)
	// or "v2", which writes only APIv2 credentials (WXPAY_API=v2, the APIv2
	// key, the client certificate pair) and the v2 notification URL.
	API string
}

// simFile is sim.json: what serve needs besides the key files.
type simFile struct {
	AppID          string `json:"appid"`
	MchID          string `json:"mchid"`
	MerchantSerial string `json:"merchant_serial"`
	PublicKeyID    string `json:"public_key_id"`
	PlatformSerial string `json:"platform_serial"`
	SimAddr        string `json:"sim_addr"`
	SimTLSAddr     string `json:"sim_tls_addr,omitempty"`
	NotifyURL      string `json:"notify_url"`
}

// NewIdentity generates a fresh development identity in memory.
func NewIdentity(o KeygenOptions) (*Identity, error) {
	bits := cmp.Or(o.Bits, DefaultKeyBits)
	id := &Identity{AppID: cmp.Or(o.AppID, DefaultAppID), MchID: cmp.Or(o.MchID, DefaultMchID)}
	if !validAppID(id.AppID) {
		return nil, fmt.Errorf("%w: appid %q: want wx followed by 16 letters or digits", ErrConfig, id.AppID)
	}
	if !validMchID(id.MchID) {
		return nil, fmt.Errorf("%w: mchid %q: want 8 to 32 digits", ErrConfig, id.MchID)
	}
	if o.API != "" && o.API != "v2" && o.API != "v3" {
		return nil, fmt.Errorf("%w: api %q: want v2 or v3", ErrConfig, o.API)
	}
	id.TLSAddr = o.SimTLSAddr
	var err error
	keys := make([]*rsa.PrivateKey, 3)
	for i := range keys {
		if keys[i], err = rsa.GenerateKey(rand.Reader, bits); err != nil {
			return nil, fmt.Errorf("sim: generate RSA key: %w", err)
		}
	}
	id.MerchantKey, id.WechatPayKey, id.PlatformKey = keys[0], keys[1], keys[2]
	now := time.Now().Truncate(time.Second)
	if id.CAKey, id.CACert, err = newCA(now); err != nil {
		return nil, err
	}
	// The merchant API certificate, as WeChat's CA issues it: its serial is
	// APIv3's merchant serial, and it is APIv2's TLS client certificate.
	id.MerchantCert, err = issue(id.CAKey, id.CACert, &id.MerchantKey.PublicKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.MchID, OrganizationalUnit: []string{"wxpaysim merchant"}, Organization: []string{"wxpaysim"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, now)
	if err != nil {
		return nil, err
	}
	id.PlatformCert, err = selfSigned(id.PlatformKey, pkix.Name{
		CommonName: "Tenpay.com sign", OrganizationalUnit: []string{"Tenpay.com CA Center"},
		Organization: []string{"Tenpay.com"}, Locality: []string{"ShenZhen"}, Country: []string{"CN"},
	}, now)
	if err != nil {
		return nil, err
	}
	id.MerchantSerial = wxpay.CertificateSerial(id.MerchantCert)
	id.PlatformSerial = wxpay.CertificateSerial(id.PlatformCert)
	id.PublicKeyID = wxpay.PublicKeyIDPrefix + "01" + id.MchID + randDigits(16)
	id.APIv3Key = []byte(randAlnum(32))
	id.APIv2Key = []byte(randAlnum(32))
	id.AppSecret = randHex(16)
	return id, nil
}

func selfSigned(k *rsa.PrivateKey, subject pkix.Name, now time.Time) (*x509.Certificate, error) {
	var sb [20]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return nil, err
	}
	sb[0] = sb[0]&0x7f | 0x10 // positive, 40 hex digits
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sb[:]),
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(keygenCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("sim: create certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Keygen generates a fresh identity and writes it to dir (created 0700 if
// needed): the key files, sim.json and wxpay.env. Secret files are 0600.
// Existing files are overwritten.
func Keygen(dir string, o KeygenOptions) (*Identity, error) {
	id, err := NewIdentity(o)
	if err != nil {
		return nil, err
	}
	if err := id.Write(dir, o); err != nil {
		return nil, err
	}
	return id, nil
}

// Write writes the identity to dir as keygen does.
func (id *Identity) Write(dir string, o KeygenOptions) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("%w: %w", ErrKeys, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeys, err)
	}
	pkcs8 := func(k *rsa.PrivateKey) []byte {
		der, _ := x509.MarshalPKCS8PrivateKey(k) // cannot fail for RSA
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&id.WechatPayKey.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeys, err)
	}
	sj, _ := json.MarshalIndent(simFile{
		AppID: id.AppID, MchID: id.MchID, MerchantSerial: id.MerchantSerial,
		PublicKeyID: id.PublicKeyID, PlatformSerial: id.PlatformSerial,
		SimAddr: cmp.Or(o.SimAddr, DefaultListen), SimTLSAddr: cmp.Or(o.SimTLSAddr, DefaultTLSListen),
		NotifyURL: o.notifyURL(),
	}, "", "  ")
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileMerchantKey, pkcs8(id.MerchantKey), secretMode},
		{FileMerchantCert, certPEM(id.MerchantCert), publicMode},
		{FileWechatPayKey, pkcs8(id.WechatPayKey), secretMode},
		{FileWechatPayPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), publicMode},
		{FilePlatformKey, pkcs8(id.PlatformKey), secretMode},
		{FilePlatformCert, certPEM(id.PlatformCert), publicMode},
		{FileAPIv3Key, id.APIv3Key, secretMode},
		{FileAPIv2Key, id.APIv2Key, secretMode},
		{FileAppSecret, []byte(id.AppSecret), secretMode},
		{FileSimJSON, append(sj, '\n'), publicMode},
		{FileEnv, id.Env(abs, o), publicMode},
		{FileAPIClientCert, certPEM(id.MerchantCert), publicMode},
		{FileAPIClientKey, pkcs8(id.MerchantKey), secretMode},
	}
	if id.CACert != nil {
		caDER, err := x509.MarshalPKCS8PrivateKey(id.CAKey)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{FileCACert, certPEM(id.CACert), publicMode}, struct {
			name string
			data []byte
			mode os.FileMode
		}{FileCAKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caDER}), secretMode})
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // WriteFile keeps an existing file's mode
			return fmt.Errorf("%w: %w", ErrKeys, err)
		}
	}
	return nil
}

// notifyURL is o.NotifyURL or the default of o.API.
func (o KeygenOptions) notifyURL() string {
	if o.API == "v2" {
		return cmp.Or(o.NotifyURL, DefaultV2NotifyURL)
	}
	return cmp.Or(o.NotifyURL, DefaultNotifyURL)
}

// Env returns the wxpay.env text: the WXPAY_* variables that point wxpayd at
// the files in absDir and at the simulator. With o.API "v2" it holds only
// what an APIv2 merchant has: WXPAY_API=v2, the APIv2 key and the client
// certificate pair, no APIv3 key, merchant key or WeChat Pay keys.
func (id *Identity) Env(absDir string, o KeygenOptions) []byte {
	base := "http://" + cmp.Or(o.SimAddr, DefaultListen)
	f := func(name string) string { return filepath.Join(absDir, name) }
	var b strings.Builder
	b.WriteString("# Written by wxpaysim keygen: a development identity for wxpayd against wxpaysim.\n")
	vars := [][2]string{
		{"WXPAY_APPID", id.AppID},
		{"WXPAY_MCHID", id.MchID},
		{"WXPAY_APP_SECRET_FILE", f(FileAppSecret)},
	}
	if o.API != "v2" {
		vars = append(vars, [][2]string{
			{"WXPAY_MERCHANT_KEY_FILE", f(FileMerchantKey)},
			{"WXPAY_MERCHANT_SERIAL", id.MerchantSerial},
			{"WXPAY_APIV3_KEY_FILE", f(FileAPIv3Key)},
		}...)
	} else {
		vars = append(vars, [2]string{"WXPAY_API", "v2"})
	}
	vars = append(vars, [2]string{"WXPAY_APIV2_KEY_FILE", f(FileAPIv2Key)})
	if o.API != "v2" {
		vars = append(vars, [][2]string{
			{"WXPAY_PUBLIC_KEY_FILE", f(FileWechatPayPub)},
			{"WXPAY_PUBLIC_KEY_ID", id.PublicKeyID},
			{"WXPAY_PLATFORM_CERT_FILES", f(FilePlatformCert)},
		}...)
	}
	vars = append(vars, [][2]string{
		{"WXPAY_APICLIENT_CERT_FILE", f(FileAPIClientCert)},
		{"WXPAY_APICLIENT_KEY_FILE", f(FileAPIClientKey)},
		{"WXPAY_API_BASE", base},
		{"WXPAY_V2_SECAPI_BASE", "https://" + cmp.Or(o.SimTLSAddr, DefaultTLSListen)},
		{"WXPAY_API_CA_FILE", f(FileCACert)},
		{"WXPAY_LOGIN_BASE", base},
		{"WXPAY_NOTIFY_URL", o.notifyURL()},
	}...)
	for _, kv := range vars {
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// LoadIdentity reads a keys directory written by Keygen and checks that it
// is consistent (serials match certificates, key pairs match, key lengths).
// Errors wrap ErrKeys and name the file, never its content.
func LoadIdentity(dir string) (*Identity, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeys, err)
		}
		return b, nil
	}
	var sf simFile
	b, err := read(FileSimJSON)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeys, FileSimJSON, err)
	}
	id := &Identity{AppID: sf.AppID, MchID: sf.MchID, PublicKeyID: sf.PublicKeyID, TLSAddr: sf.SimTLSAddr}
	fail := func(name string, err error) (*Identity, error) {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeys, name, err)
	}
	key := func(name string) (*rsa.PrivateKey, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		k, err := wxpay.ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeys, name, err)
		}
		return k, nil
	}
	cert := func(name string) (*x509.Certificate, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		c, err := wxpay.ParseCertificatePEM(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeys, name, err)
		}
		return c, nil
	}
	if id.MerchantKey, err = key(FileMerchantKey); err != nil {
		return nil, err
	}
	if id.WechatPayKey, err = key(FileWechatPayKey); err != nil {
		return nil, err
	}
	if id.PlatformKey, err = key(FilePlatformKey); err != nil {
		return nil, err
	}
	if id.MerchantCert, err = cert(FileMerchantCert); err != nil {
		return nil, err
	}
	if id.PlatformCert, err = cert(FilePlatformCert); err != nil {
		return nil, err
	}
	id.MerchantSerial = wxpay.CertificateSerial(id.MerchantCert)
	id.PlatformSerial = wxpay.CertificateSerial(id.PlatformCert)
	if sf.MerchantSerial != "" && sf.MerchantSerial != id.MerchantSerial {
		return fail(FileSimJSON, errors.New("merchant_serial does not match merchant_cert.pem"))
	}
	if sf.PlatformSerial != "" && sf.PlatformSerial != id.PlatformSerial {
		return fail(FileSimJSON, errors.New("platform_serial does not match platform_cert.pem"))
	}
	if !id.MerchantKey.PublicKey.Equal(id.MerchantCert.PublicKey) {
		return fail(FileMerchantCert, errors.New("does not hold merchant_key.pem's public key"))
	}
	if !id.PlatformKey.PublicKey.Equal(id.PlatformCert.PublicKey) {
		return fail(FilePlatformCert, errors.New("does not hold platform_key.pem's public key"))
	}
	pb, err := read(FileWechatPayPub)
	if err != nil {
		return nil, err
	}
	pub, err := wxpay.ParsePublicKeyPEM(pb)
	if err != nil {
		return fail(FileWechatPayPub, err)
	}
	if !id.WechatPayKey.PublicKey.Equal(pub) {
		return fail(FileWechatPayPub, errors.New("does not match wechatpay_key.pem"))
	}
	if id.APIv3Key, err = read(FileAPIv3Key); err != nil {
		return nil, err
	}
	if id.APIv2Key, err = read(FileAPIv2Key); err != nil {
		return nil, err
	}
	s, err := read(FileAppSecret)
	if err != nil {
		return nil, err
	}
	id.AppSecret = strings.TrimSpace(string(s))
	if err := id.loadCA(dir); err != nil {
		return nil, err
	}
	if err := id.check(); err != nil {
		return nil, err
	}
	return id, nil
}

// check validates an Identity built in memory or loaded.
func (id *Identity) check() error {
	switch {
	case id.AppID == "" || id.MchID == "":
		return fmt.Errorf("%w: appid and mchid are required", ErrKeys)
	case !strings.HasPrefix(id.PublicKeyID, wxpay.PublicKeyIDPrefix) || len(id.PublicKeyID) > 64:
		return fmt.Errorf("%w: public key id must start with %s", ErrKeys, wxpay.PublicKeyIDPrefix)
	case len(id.APIv3Key) != 32:
		return fmt.Errorf("%w: %s must hold 32 bytes, has %d", ErrKeys, FileAPIv3Key, len(id.APIv3Key))
	case len(id.APIv2Key) != 32:
		return fmt.Errorf("%w: %s must hold 32 bytes, has %d", ErrKeys, FileAPIv2Key, len(id.APIv2Key))
	case id.AppSecret == "":
		return fmt.Errorf("%w: %s is empty", ErrKeys, FileAppSecret)
	case id.MerchantCert == nil || id.PlatformCert == nil || id.WechatPayKey == nil || id.PlatformKey == nil:
		return fmt.Errorf("%w: incomplete identity", ErrKeys)
	}
	return nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func validAppID(s string) bool {
	return len(s) == 18 && strings.HasPrefix(s, "wx") && alnum(s[2:])
}

func validMchID(s string) bool {
	if len(s) < 8 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("sim: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

func randAlnum(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, n)
	var raw [64]byte
	for len(out) < n {
		if _, err := rand.Read(raw[:]); err != nil {
			panic("sim: crypto/rand: " + err.Error())
		}
		for _, c := range raw {
			if c < 248 && len(out) < n {
				out = append(out, alphabet[c%62])
			}
		}
	}
	return string(out)
}

func randDigits(n int) string {
	out := make([]byte, 0, n)
	var raw [32]byte
	for len(out) < n {
		if _, err := rand.Read(raw[:]); err != nil {
			panic("sim: crypto/rand: " + err.Error())
		}
		for _, c := range raw {
			if c < 250 && len(out) < n {
				out = append(out, '0'+c%10)
			}
		}
	}
	return string(out)
}
