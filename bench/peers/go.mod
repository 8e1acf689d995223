module github.com/wxpayd/wxpayd/bench/peers

go 1.26.0

replace github.com/wxpayd/wxpayd => ../..

require (
	github.com/go-pay/crypto v0.0.1
	github.com/go-pay/gopay v1.5.101
	github.com/golang-fips/openssl/v2 v2.0.3
	github.com/wechatpay-apiv3/wechatpay-go v0.2.20
	github.com/wxpayd/wxpayd v0.0.0-00010101000000-000000000000
)

require (
	github.com/go-pay/errgroup v0.0.2 // indirect
	github.com/go-pay/util v0.0.2 // indirect
	github.com/go-pay/xlog v0.0.2 // indirect
	github.com/go-pay/xtime v0.0.2 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/molecule-man/go-brrr v1.3.0 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasthttp v1.77.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
)
