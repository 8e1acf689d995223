package relay

// Exported for tests.
var (
	OutTradeNo = outTradeNo
	TimeMs     = timeMs
)
