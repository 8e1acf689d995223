package sim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"
)

// APIv2's certificate-protected surface: /secapi/pay/refund is served only
// on a TLS listener that requires a client certificate issued by the
// simulator's CA (Identity.CACert), as WeChat requires the merchant's API
// certificate (apiclient_cert.pem) there. The listener's own certificate
// is issued by the same CA at start, for loopback, localhost and
// Identity.TLSAddr's host, so a merchant trusting wxpaysim_ca.pem can
// verify it.

// DefaultTLSListen is the TLS listener's address that keygen writes to
// wxpay.env and sim.json unless told otherwise (see Config.TLSListen).
const DefaultTLSListen = "127.0.0.1:9443"

// TLSListenOff disables the TLS listener (Config.TLSListen).
const TLSListenOff = "off"

// tlsListen is the TLS listener's address (see Config.TLSListen) and
// whether failing to listen there is only logged.
func (c *Config) tlsListen(id *Identity) (addr string, optional bool) {
	switch {
	case c.TLSListen != "":
		return c.TLSListen, false
	case id.TLSAddr != "":
		return id.TLSAddr, true
	}
	host, _, err := net.SplitHostPort(c.listen())
	if err != nil {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, "0"), false
}

// newCA makes the simulator's CA: ECDSA P-256 (fast to generate; the CA's
// key type is not the merchant's business), valid as long as keygen's
// certificates.
func newCA(now time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sim: generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "wxpaysim CA", Organization: []string{"wxpaysim"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c, err := issue(k, nil, &k.PublicKey, tmpl, now)
	return k, c, err
}

// issue signs tmpl for pub with the CA (ca nil: self-signed by caKey),
// filling the serial (20 random bytes, 40 hex digits) and the validity.
func issue(caKey crypto.Signer, ca *x509.Certificate, pub any, tmpl *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	var sb [20]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return nil, err
	}
	sb[0] = sb[0]&0x7f | 0x10 // positive, 40 hex digits
	tmpl.SerialNumber = new(big.Int).SetBytes(sb[:])
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(keygenCertValidity)
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	tmpl.BasicConstraintsValid = true
	parent := ca
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sim: create certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// tlsHost returns the host of a host:port, "" when there is none.
func tlsHost(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return h
}

// loadCA reads the CA files of a keys directory; a directory without them
// (written by an older keygen) loads without a CA.
func (id *Identity) loadCA(dir string) error {
	cb, err := os.ReadFile(filepath.Join(dir, FileCACert))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeys, err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, FileCAKey))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeys, err)
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return fmt.Errorf("%w: %s, %s: %w", ErrKeys, FileCACert, FileCAKey, err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeys, FileCACert, err)
	}
	k, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%w: %s: not an ECDSA key", ErrKeys, FileCAKey)
	}
	id.CAKey, id.CACert = k, c
	return nil
}

// serverTLS is the TLS listener's configuration: a certificate issued now
// by the CA for loopback, localhost, Identity.TLSHost and host, and client
// certificates required and verified against the CA.
func (id *Identity) serverTLS(host string) (*tls.Config, error) {
	if id.CACert == nil || id.CAKey == nil {
		return nil, fmt.Errorf("%w: no CA in the identity (run wxpaysim keygen again)", ErrKeys)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "api.mch.weixin.qq.com (wxpaysim)", Organization: []string{"wxpaysim"}},
		DNSNames:    []string{"localhost", "api.mch.weixin.qq.com"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range []string{tlsHost(id.TLSAddr), host} {
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	leaf, err := issue(id.CAKey, id.CACert, &k.PublicKey, tmpl, time.Now())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(id.CACert)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, id.CACert.Raw}, PrivateKey: k, Leaf: leaf}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// startTLS opens the TLS listener (Config.TLSListen) and serves the same
// handler on it; nothing when it is off or the identity has no CA.
func (s *Server) startTLS() error {
	addr, optional := s.cfg.tlsListen(s.id)
	if addr == TLSListenOff {
		return nil
	}
	if s.id.CACert == nil {
		s.log.Warn("wxpaysim: no CA in the keys directory: the APIv2 TLS listener (/secapi/) is off; run keygen again")
		return nil
	}
	tc, err := s.id.serverTLS(tlsHost(addr))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && optional {
		s.log.Warn("wxpaysim: the APIv2 TLS listener (/secapi/) is off: its default address is not free; set --tls-listen",
			"addr", addr, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("sim: TLS listen: %w", err)
	}
	if s.srv.Logger == nil {
		// A client without the certificate fails the handshake: fasthttp
		// would print that to the standard logger.
		s.srv.Logger = debugLog{s.log}
	}
	s.tlsLn = ln
	s.tlsDone = make(chan struct{})
	go func() { // tracked by tlsDone; Close waits for it
		_ = s.srv.Serve(tls.NewListener(ln, tc))
		close(s.tlsDone)
	}()
	s.log.Info("wxpaysim serving APIv2 TLS (client certificates required)", "addr", ln.Addr().String())
	return nil
}

// TLSAddr returns the TLS listener's address once started, else "".
func (s *Server) TLSAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// TLSURL returns "https://" + TLSAddr(), or "" without a TLS listener.
func (s *Server) TLSURL() string {
	if s.tlsLn == nil {
		return ""
	}
	return "https://" + s.TLSAddr()
}

// closeTLS closes the TLS listener (fasthttp's shutdown already did, when
// it had registered it) and waits for its serve loop.
func (s *Server) closeTLS(done <-chan struct{}) error {
	if s.tlsLn == nil {
		return nil
	}
	s.tlsLn.Close()
	select {
	case <-s.tlsDone:
		return nil
	case <-done:
		return errors.New("sim: TLS serve loop still running")
	}
}

// merchantCertOK reports whether the request came over the TLS listener
// with the merchant's own API certificate (the TLS handshake already
// checked that the CA issued it): its public key must be the merchant
// key's. UNCONFIRMED: WeChat's exact check and its return_msg.
func (s *Server) merchantCertOK(ctx *fasthttp.RequestCtx) bool {
	st := ctx.TLSConnectionState()
	if st == nil || len(st.PeerCertificates) == 0 {
		return false
	}
	pub, ok := st.PeerCertificates[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(s.id.MerchantCert.PublicKey)
}

// debugLog passes fasthttp's log lines (failed TLS handshakes, broken
// connections) to the simulator's logger at debug level.
type debugLog struct{ l *slog.Logger }

func (d debugLog) Printf(format string, args ...any) { d.l.Debug(fmt.Sprintf(format, args...)) }
