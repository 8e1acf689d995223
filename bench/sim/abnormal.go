package sim

import (
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"slices"

	"github.com/wxpayd/wxpayd/wxpay"
)

// POST /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund: the
// merchant's way out of an ABNORMAL refund. Body (direct merchants):
//
//	out_refund_no  required, the refund's
//	type           required: USER_BANK_CARD (to the buyer's debit card) or
//	               MERCHANT_BANK_CARD (to the merchant's bank account)
//	bank_type      USER_BANK_CARD only: one of bankTypes
//	bank_account   USER_BANK_CARD only: the card number, encrypted
//	real_name      USER_BANK_CARD only: the card holder, encrypted
//
// Encrypted fields are RSAES-OAEP (SHA-1, MGF1) with WeChat's key named by
// the request's Wechatpay-Serial (the public key id or the platform
// certificate serial), Base64. The answer is the refund, PROCESSING again;
// after the refund delay it succeeds with REFUND.SUCCESS.

const pathAbnormalSuffix = "/apply-abnormal-refund"

// Abnormal refund types.
const (
	AbnormalToUserCard     = "USER_BANK_CARD"
	AbnormalToMerchantCard = "MERCHANT_BANK_CARD"
)

// bankTypes are the debit cards an abnormal refund may go to (WeChat lists
// fifteen banks).
var bankTypes = []string{
	"CMB_DEBIT", "COMM_DEBIT", "ABC_DEBIT", "CCB_DEBIT", "ICBC_DEBIT", "BOC_DEBIT", "PAB_DEBIT", "SPDB_DEBIT",
	"CITIC_DEBIT", "CEB_DEBIT", "CMBC_DEBIT", "CIB_DEBIT", "GDB_DEBIT", "PSBC_DEBIT", "NBCB_DEBIT",
}

// abnormalBody is the JSON of apply-abnormal-refund.
type abnormalBody struct {
	OutRefundNo string `json:"out_refund_no"`
	Type        string `json:"type"`
	BankType    string `json:"bank_type"`
	BankAccount string `json:"bank_account"`
	RealName    string `json:"real_name"`
}

// applyAbnormal serves apply-abnormal-refund.
func (s *Server) applyAbnormal(r *v3req) (int, []byte, *apiError) {
	refundID := pathParam(r.ctx, pathRefundPrefix, pathAbnormalSuffix)
	if refundID == "" || len(refundID) > 32 || !allDigits(refundID) {
		e := paramError("/refund_id", refundID, "须为32位以内的数字")
		e.detail.Location = "path"
		return 0, nil, e
	}
	var b abnormalBody
	if e := decodeBody(r.body, &b); e != nil {
		return 0, nil, e
	}
	account, e := s.validateAbnormal(&b, string(r.ctx.Request.Header.Peek(wxpay.HeaderSerial)))
	if e != nil {
		return 0, nil, e
	}
	st := s.store
	st.idxMu.RLock()
	rf := st.refunds[orderKey(r.mchID, b.OutRefundNo)]
	st.idxMu.RUnlock()
	if rf == nil || rf.refundID != refundID {
		// UNCONFIRMED: WeChat's answer when out_refund_no and refund_id do
		// not name the same refund.
		return 0, nil, newErr(404, wxpay.CodeResourceNotExists, "退款单不存在")
	}
	o := rf.o
	o.sh.mu.Lock()
	defer o.sh.mu.Unlock()
	if rf.status != wxpay.RefundStatusAbnormal {
		// UNCONFIRMED: WeChat's code for a refund that is not ABNORMAL.
		return 0, nil, newErr(400, wxpay.CodeInvalidRequest, "退款单状态不是退款异常，不能发起异常退款")
	}
	if !s.notifier.reserve() { // for the REFUND.SUCCESS to come
		return 0, nil, errOverloaded
	}
	rf.status, rf.outcome = wxpay.RefundStatusProcessing, wxpay.RefundStatusSuccess
	rf.account = account
	if b.Type == AbnormalToUserCard {
		rf.channel = "OTHER_BANKCARD"
	}
	s.stats.abnormalApply.Add(1)
	s.notifier.schedule(&task{due: r.now.Add(s.cfg.refundDelay()), fn: func() { s.completeRefund(rf) }})
	return 200, rf.json(make([]byte, 0, 512)), nil
}

// validateAbnormal checks the body and decrypts the card; it returns the
// refund's new user_received_account.
func (s *Server) validateAbnormal(b *abnormalBody, serial string) (string, *apiError) {
	if b.OutRefundNo == "" {
		return "", paramError("/out_refund_no", "", "必填")
	}
	if !wxpay.ValidOutRefundNo(b.OutRefundNo) {
		return "", paramError("/out_refund_no", b.OutRefundNo, "长度不能超过64个字符，只能是数字、大小写字母_-|*@")
	}
	switch b.Type {
	case AbnormalToMerchantCard:
		// UNCONFIRMED: the account text for a refund to the merchant.
		return "商户结算银行账户", nil
	case AbnormalToUserCard:
	case "":
		return "", paramError("/type", "", "必填")
	default:
		return "", paramError("/type", b.Type, "只能是USER_BANK_CARD或MERCHANT_BANK_CARD")
	}
	if b.BankType == "" {
		return "", paramError("/bank_type", "", "type为USER_BANK_CARD时必填")
	}
	if !slices.Contains(bankTypes, b.BankType) {
		return "", paramError("/bank_type", b.BankType, "不支持的开户银行")
	}
	card, e := s.decryptField("/bank_account", b.BankAccount, serial)
	if e != nil {
		return "", e
	}
	if len(card) < 8 || len(card) > 32 || !allDigits(card) {
		return "", paramError("/bank_account", b.BankAccount, "解密后须为8到32位数字")
	}
	name, e := s.decryptField("/real_name", b.RealName, serial)
	if e != nil {
		return "", e
	}
	if name == "" {
		return "", paramError("/real_name", b.RealName, "解密后不能为空")
	}
	// UNCONFIRMED: WeChat's text is {bank}{card type}{card tail}.
	return b.BankType + "尾号" + card[len(card)-4:], nil
}

// decryptField decrypts a sensitive field with the WeChat key serial names:
// the public key (public-key and mixed modes) or the platform certificate's
// (certificate and mixed modes).
func (s *Server) decryptField(field, v, serial string) (string, *apiError) {
	if v == "" {
		return "", paramError(field, "", "type为USER_BANK_CARD时必填")
	}
	mode := s.cfg.signingMode()
	var key *rsa.PrivateKey
	switch {
	case serial == s.id.PublicKeyID && mode != ModeCertificate:
		key = s.id.WechatPayKey
	case serial == s.id.PlatformSerial && mode != ModePublicKey:
		key = s.id.PlatformKey
	default:
		// UNCONFIRMED: WeChat's exact answer for a missing or unknown
		// Wechatpay-Serial on a request with encrypted fields.
		e := paramError("/Wechatpay-Serial", serial, "敏感信息加密所用的平台证书序列号或微信支付公钥ID错误")
		e.detail.Location = "header"
		return "", e
	}
	ct, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", paramError(field, v, "须为Base64编码的密文")
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key, ct, nil)
	if err != nil {
		return "", paramError(field, v, "解密失败")
	}
	return string(plain), nil
}
