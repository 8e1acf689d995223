package consumer

import (
	"unicode/utf8"

	"github.com/wxpayd/wxpayd/actors/event"
)

// Decode turns a message value into an event, with exactly the result of
// event.Decode (same event, same error) but several times faster for the
// encoding event.Encode writes: a flat JSON object of known keys whose
// values are plain strings and integers. The bytes are copied into one
// string and every string field is a substring of it (one allocation).
// Anything else (escapes, unknown or differently-cased keys, floats, nulls,
// nested values, invalid UTF-8, an invalid event) takes event.Decode.
func Decode(b []byte) (event.Event, error) {
	if e, ok := decodeFast(b); ok {
		return e, nil
	}
	return event.Decode(b)
}

func decodeFast(b []byte) (e event.Event, ok bool) {
	s := string(b)
	p := parser{s: s}
	if !p.ws() || p.s[p.i] != '{' {
		return e, false
	}
	p.i++
	if !p.ws() {
		return e, false
	}
	if p.s[p.i] == '}' {
		return e, false // empty object: invalid event, slow path reports it
	}
	for {
		key, ok := p.str()
		if !ok || !p.ws() || p.s[p.i] != ':' {
			return e, false
		}
		p.i++
		if !p.ws() {
			return e, false
		}
		if p.s[p.i] == '"' {
			v, ok := p.str()
			if !ok || !setString(&e, key, v) {
				return e, false
			}
		} else {
			n, neg, ok := p.integer()
			if !ok || !setInt(&e, key, n, neg) {
				return e, false
			}
		}
		if !p.ws() {
			return e, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			if !p.ws() {
				return e, false
			}
			continue
		case '}':
			p.i++
			for ; p.i < len(p.s); p.i++ {
				if !isSpace(p.s[p.i]) {
					return e, false
				}
			}
			if e.V != event.Version || e.EventID == "" || e.Type == "" || e.TimeMs <= 0 {
				return e, false
			}
			return e, true
		default:
			return e, false
		}
	}
}

type parser struct {
	s string
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ws skips whitespace and reports whether a byte remains.
func (p *parser) ws() bool {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
	return p.i < len(p.s)
}

// str reads a string without escapes or control characters, in valid
// UTF-8 (encoding/json would rewrite invalid bytes).
func (p *parser) str() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.s); j++ {
		c := p.s[j]
		switch {
		case c == '"':
			v := p.s[start:j]
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			p.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// integer reads a JSON integer (no fraction or exponent) that fits in
// uint64, and its sign.
func (p *parser) integer() (n uint64, neg bool, ok bool) {
	if p.i < len(p.s) && p.s[p.i] == '-' {
		neg = true
		p.i++
	}
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		d := uint64(p.s[p.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false, false
		}
		n = n*10 + d
		p.i++
	}
	digits := p.i - start
	if digits == 0 || (digits > 1 && p.s[start] == '0') {
		return 0, false, false
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return 0, false, false
	}
	return n, neg, true
}

func setString(e *event.Event, key, v string) bool {
	switch key {
	case "event_id":
		e.EventID = v
	case "type":
		e.Type = v
	case "out_trade_no":
		e.OutTradeNo = v
	case "state":
		e.State = v
	case "sku":
		e.SKU = v
	case "openid":
		e.OpenID = v
	case "transaction_id":
		e.TransactionID = v
	case "out_refund_no":
		e.OutRefundNo = v
	case "notification_id":
		e.NotificationID = v
	case "reason":
		e.Reason = v
	case "alert":
		e.Alert = v
	case "shop_order_id":
		e.ShopOrderID = v
	case "attach":
		e.Attach = v
	default:
		return false
	}
	return true
}

func setInt(e *event.Event, key string, n uint64, neg bool) bool {
	if key == "seq" {
		if neg {
			return false
		}
		e.Seq = n
		return true
	}
	if n > 1<<63-1 { // fits int64 (the int fields are 64-bit on our platforms)
		return false
	}
	v := int64(n)
	if neg {
		v = -v
	}
	switch key {
	case "v":
		e.V = int(v)
	case "ts_ms":
		e.TimeMs = v
	case "quantity":
		e.Quantity = v
	case "amount":
		e.Amount = v
	case "refund_amount":
		e.RefundAmount = v
	case "refunded_total":
		e.RefundedTotal = v
	case "prepay_latency_us":
		e.PrepayMicros = v
	case "prepay_to_paid_ms":
		e.PayMillis = v
	default:
		return false
	}
	return true
}
