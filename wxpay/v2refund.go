package wxpay

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
)

// V2MaxReqInfoSize is the largest Base64 req_info DecryptReqInfo accepts, in
// bytes; it matches the notification size limit V2MaxXMLSize.
const V2MaxReqInfoSize = V2MaxXMLSize

// V2RefundNotification is the outer document of an APIv2 refund notification.
// It carries no sign: its authenticity rests on req_info decrypting under the
// merchant's key.
type V2RefundNotification struct {
	ReturnCode string // return_code: SUCCESS or FAIL (communication only)
	ReturnMsg  string // return_msg: reason when ReturnCode is FAIL
	AppID      string // appid
	MchID      string // mch_id
	NonceStr   string // nonce_str
	ReqInfo    string // req_info: Base64 ciphertext, see (*V2Key).DecryptReqInfo
}

// DecodeV2RefundNotification decodes the outer refund notification from the
// map ParseV2XML returns. return_code is required and must be SUCCESS or
// FAIL; when it is SUCCESS, appid, mch_id, nonce_str and req_info are
// required too. Missing fields wrap ErrMissingField and bad values
// ErrMalformed, with the field name.
func DecodeV2RefundNotification(params map[string]string) (V2RefundNotification, error) {
	n := V2RefundNotification{
		ReturnCode: params["return_code"],
		ReturnMsg:  params["return_msg"],
		AppID:      params["appid"],
		MchID:      params["mch_id"],
		NonceStr:   params["nonce_str"],
		ReqInfo:    params["req_info"],
	}
	if err := v2Code("return_code", n.ReturnCode); err != nil {
		return V2RefundNotification{}, err
	}
	if n.ReturnCode != v2Success {
		return n, nil
	}
	if err := v2Required(params, "appid", "mch_id", "nonce_str", "req_info"); err != nil {
		return V2RefundNotification{}, err
	}
	return n, nil
}

// V2RefundInfo is the decrypted req_info of an APIv2 refund notification.
// Amounts are in fen.
type V2RefundInfo struct {
	OutRefundNo         string // out_refund_no
	OutTradeNo          string // out_trade_no
	RefundAccount       string // refund_account, e.g. REFUND_SOURCE_RECHARGE_FUNDS
	RefundFee           int64  // refund_fee
	RefundID            string // refund_id
	RefundRecvAccount   string // refund_recv_accout (sic), e.g. 支付用户零钱
	RefundRequestSource string // refund_request_source: API or VENDOR_PLATFORM
	RefundStatus        string // refund_status: SUCCESS, CHANGE or REFUNDCLOSE
	SettlementRefundFee int64  // settlement_refund_fee; 0 when absent
	SettlementTotalFee  int64  // settlement_total_fee; 0 when absent
	SuccessTime         string // success_time, "yyyy-MM-dd HH:mm:ss" Beijing time; empty unless SUCCESS
	TotalFee            int64  // total_fee
	TransactionID       string // transaction_id
}

// V2RefundSuccessTimeLayout is the time.Parse layout of
// V2RefundInfo.SuccessTime (Beijing time, UTC+8).
const V2RefundSuccessTimeLayout = "2006-01-02 15:04:05"

// DecryptReqInfo decrypts and decodes the req_info of an APIv2 refund
// notification: Base64, then AES-256-ECB with the 32 ASCII bytes of the
// lower-case hex MD5 of the APIv2 key, strict PKCS#7 unpadding, and the
// <root> document. out_refund_no, out_trade_no, refund_id, refund_status,
// transaction_id, refund_fee and total_fee are required; amounts must be
// integers (refund_fee and total_fee positive) and success_time, if present,
// must match V2RefundSuccessTimeLayout. Every failure wraps ErrV2ReqInfo; XML
// and field errors also wrap ErrMalformed or ErrMissingField.
func (k *V2Key) DecryptReqInfo(reqInfo string) (V2RefundInfo, error) {
	plain, err := k.decryptReqInfo(reqInfo)
	if err != nil {
		return V2RefundInfo{}, err
	}
	params, err := parseFlatXML(plain, "root")
	clear(plain)
	if err != nil {
		return V2RefundInfo{}, fmt.Errorf("%w: %w", ErrV2ReqInfo, err)
	}
	info, err := decodeV2RefundInfo(params)
	if err != nil {
		return V2RefundInfo{}, fmt.Errorf("%w: %w", ErrV2ReqInfo, err)
	}
	return info, nil
}

func decodeV2RefundInfo(p map[string]string) (V2RefundInfo, error) {
	info := V2RefundInfo{
		OutRefundNo:         p["out_refund_no"],
		OutTradeNo:          p["out_trade_no"],
		RefundAccount:       p["refund_account"],
		RefundID:            p["refund_id"],
		RefundRecvAccount:   p["refund_recv_accout"],
		RefundRequestSource: p["refund_request_source"],
		RefundStatus:        p["refund_status"],
		SuccessTime:         p["success_time"],
		TransactionID:       p["transaction_id"],
	}
	if err := v2Required(p, "out_refund_no", "out_trade_no", "refund_id", "refund_status", "transaction_id"); err != nil {
		return V2RefundInfo{}, err
	}
	var err error
	if info.RefundFee, err = v2Amount(p, "refund_fee", true, true); err != nil {
		return V2RefundInfo{}, err
	}
	if info.TotalFee, err = v2Amount(p, "total_fee", true, true); err != nil {
		return V2RefundInfo{}, err
	}
	if info.SettlementRefundFee, err = v2Amount(p, "settlement_refund_fee", false, false); err != nil {
		return V2RefundInfo{}, err
	}
	if info.SettlementTotalFee, err = v2Amount(p, "settlement_total_fee", false, false); err != nil {
		return V2RefundInfo{}, err
	}
	if err := v2Time("success_time", info.SuccessTime, V2RefundSuccessTimeLayout); err != nil {
		return V2RefundInfo{}, err
	}
	return info, nil
}

// decryptReqInfo returns the unpadded plaintext of reqInfo in a new slice.
func (k *V2Key) decryptReqInfo(reqInfo string) ([]byte, error) {
	if reqInfo == "" {
		return nil, fmt.Errorf("%w: empty", ErrV2ReqInfo)
	}
	if len(reqInfo) > V2MaxReqInfoSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrV2ReqInfo, len(reqInfo), V2MaxReqInfoSize)
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(reqInfo)))
	n, err := base64.StdEncoding.Decode(buf, []byte(reqInfo))
	if err != nil {
		return nil, fmt.Errorf("%w: not Base64", ErrV2ReqInfo)
	}
	ct := buf[:n]
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a positive multiple of %d", ErrV2ReqInfo, len(ct), aes.BlockSize)
	}
	for i := 0; i < len(ct); i += aes.BlockSize {
		k.ecb.Decrypt(ct[i:i+aes.BlockSize], ct[i:i+aes.BlockSize])
	}
	plain, ok := pkcs7Unpad(ct)
	if !ok {
		clear(ct)
		return nil, fmt.Errorf("%w: bad padding (wrong key?)", ErrV2ReqInfo)
	}
	return plain, nil
}

// pkcs7Unpad checks the padding of a whole number of blocks without branching
// on the pad bytes and returns the plaintext.
func pkcs7Unpad(b []byte) ([]byte, bool) {
	pad := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	last := b[len(b)-aes.BlockSize:]
	for i := range aes.BlockSize {
		// bytes at distance < pad from the end must equal pad
		in := subtle.ConstantTimeLessOrEq(aes.BlockSize-i, pad)
		eq := subtle.ConstantTimeByteEq(last[i], byte(pad))
		good &= subtle.ConstantTimeSelect(in, eq, 1)
	}
	if good != 1 {
		return nil, false
	}
	return b[:len(b)-pad], true
}

// EncryptReqInfo is the inverse of DecryptReqInfo's decryption: it PKCS#7-pads
// plain, encrypts it with AES-256-ECB under the req_info key and returns the
// Base64 text, as WeChat puts it in req_info. plain is normally a <root>
// document; it is not checked. Results longer than V2MaxReqInfoSize are
// refused with ErrV2ReqInfo. EncryptReqInfo is meant for simulators and
// tests; ECB reveals repeated blocks, so do not use it to protect data.
func (k *V2Key) EncryptReqInfo(plain []byte) (string, error) {
	padded := len(plain) + aes.BlockSize - len(plain)%aes.BlockSize
	if base64.StdEncoding.EncodedLen(padded) > V2MaxReqInfoSize {
		return "", fmt.Errorf("%w: %d bytes of plaintext is too long", ErrV2ReqInfo, len(plain))
	}
	buf := make([]byte, padded)
	copy(buf, plain)
	pad := byte(padded - len(plain))
	for i := len(plain); i < padded; i++ {
		buf[i] = pad
	}
	for i := 0; i < padded; i += aes.BlockSize {
		k.ecb.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}
