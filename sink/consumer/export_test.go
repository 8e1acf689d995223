package consumer

// DecodeFast is the fast path alone, for tests.
var DecodeFast = decodeFast
