package ingress

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/wxpay"
)

// WeChatMetrics are the Prometheus series of the calls wxpayd makes to the
// WeChat Pay API: wxpayd_wechat_call_duration_seconds{op,outcome} and
// wxpayd_wechat_errors_total{op,code}. Names, labels and help texts are a
// contract with the dashboards in deploy/. They are kept apart from the
// Server so that they exist before the WeChat client, which the Server
// needs, is built. Safe for concurrent use.
type WeChatMetrics struct {
	calls  *prometheus.HistogramVec
	errors *prometheus.CounterVec
}

// NewWeChatMetrics makes the series and registers them with reg (nil: not
// registered). It fails if reg already holds series of these names.
func NewWeChatMetrics(reg prometheus.Registerer) (*WeChatMetrics, error) {
	m := &WeChatMetrics{
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxpayd_wechat_call_duration_seconds", Help: "WeChat Pay API call latency by operation and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxpayd_wechat_errors_total", Help: "WeChat Pay API errors by operation and code.",
		}, []string{"op", "code"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.errors} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Observe records one WeChat Pay API call: its latency under outcome "ok"
// or "error" and, for an error, one count under WeChat's error code, else
// HTTP_<status>, or TRANSPORT when no answer was read (status 0). Its
// signature is client.Observer's: give it to client.WithObserver, and
// every call the client makes is recorded (prepay, query, close and
// refunds from the order actors; certificates from the refresher).
func (m *WeChatMetrics) Observe(op string, status int, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
		code, ok := wxpay.APIErrorCode(err)
		if !ok {
			code = "HTTP_" + strconv.Itoa(status)
			if status == 0 {
				code = "TRANSPORT"
			}
		}
		m.errors.WithLabelValues(op, code).Inc()
	}
	m.calls.WithLabelValues(op, outcome).Observe(d.Seconds())
}
