package relay

import (
	"bytes"
	"encoding/json"
	"strconv"
)

var (
	otnField = []byte(`"out_trade_no":"`)
	tsField  = []byte(`"ts_ms":`)
)

// outTradeNo returns the out_trade_no of an encoded event without decoding
// the rest: encoding/json writes it as a plain string unless it needs
// escapes, and then (or if the field is not found) the slow path decodes it.
// The result aliases b.
func outTradeNo(b []byte) []byte {
	if i := bytes.Index(b, otnField); i >= 0 {
		rest := b[i+len(otnField):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return rest[:j]
		}
	}
	var e struct {
		OutTradeNo string `json:"out_trade_no"`
	}
	if json.Unmarshal(b, &e) != nil || e.OutTradeNo == "" {
		return nil // no key: the balancer spreads it; it is still published
	}
	return []byte(e.OutTradeNo)
}

// timeMs returns the ts_ms of an encoded event, or 0.
func timeMs(b []byte) int64 {
	i := bytes.Index(b, tsField)
	if i < 0 {
		return 0
	}
	rest := b[i+len(tsField):]
	j := 0
	for j < len(rest) && (rest[j] == '-' || rest[j] >= '0' && rest[j] <= '9') {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}
