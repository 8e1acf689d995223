module github.com/wxpayd/wxpayd/bench/peers

go 1.26.0

replace github.com/wxpayd/wxpayd => ../..

require (
	github.com/go-pay/gopay v1.5.101 // indirect
	github.com/wechatpay-apiv3/wechatpay-go v0.2.20 // indirect
	github.com/wxpayd/wxpayd v0.0.0-00010101000000-000000000000 // indirect
)
