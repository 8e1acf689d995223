package wxpay

import (
	"crypto/sha256"
	"fmt"
	"strconv"
)

// PayParams are the parameters the Mini Program passes to wx.requestPayment
// (plus appId, which the backend returns so the client can check it; the
// client does not pass it to wx.requestPayment). JSON names are the
// Mini Program's.
type PayParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// PayPackage returns the package value for a prepay_id: "prepay_id=<id>".
func PayPackage(prepayID string) string { return "prepay_id=" + prepayID }

// RequestPayment returns APIv3 wx.requestPayment parameters (signType RSA):
// paySign = Base64(SHA256withRSA(appId\ntimeStamp\nnonceStr\npackage\n)).
func (s *Signer) RequestPayment(appID, prepayID string, timestamp int64, nonce string) (PayParams, error) {
	if appID == "" || prepayID == "" || nonce == "" {
		return PayParams{}, fmt.Errorf("%w: appId, prepay_id and nonce are required", ErrMissingField)
	}
	ts := strconv.FormatInt(timestamp, 10)
	pkg := PayPackage(prepayID)
	bp := getBuf()
	b := append((*bp)[:0], appID...)
	b = append(b, '\n')
	b = append(b, ts...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, pkg...)
	b = append(b, '\n')
	d := sha256.Sum256(b)
	*bp = b
	putBuf(bp)
	sig, err := s.key.SignDigest(&d)
	if err != nil {
		return PayParams{}, err
	}
	return PayParams{
		AppID: appID, TimeStamp: ts, NonceStr: nonce, Package: pkg,
		SignType: "RSA", PaySign: encodeB64(sig),
	}, nil
}
