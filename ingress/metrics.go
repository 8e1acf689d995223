package ingress

import (
	"bytes"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// metrics are the server's Prometheus series; the WeChat Pay calls' are
// WeChatMetrics (wechat_metrics.go). Names are a contract with the
// dashboards in deploy/.
type metrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	notifications *prometheus.CounterVec
	admission     *prometheus.CounterVec
	handler       fasthttp.RequestHandler
}

func newMetrics(reg prometheus.Registerer, g prometheus.Gatherer, s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxpayd_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxpayd_http_request_duration_seconds", Help: "HTTP request latency by route and outcome class.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "outcome"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxpayd_notifications_total", Help: "WeChat notifications by kind and outcome.",
		}, []string{"kind", "outcome"}),
		admission: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxpayd_admission_rejections_total", Help: "Requests refused at admission, by lane (prepay, notify, budget).",
		}, []string{"lane"}),
	}
	am := s.d.Actors.Metrics()
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_actor_inflight_requests", Help: "Requests inside the actors (the bound of every mailbox)."},
			func() float64 { return float64(am.InFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_order_actors_live", Help: "Order actors in memory."},
			func() float64 { return float64(am.LiveOrders.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wxpayd_order_actors_passivated_total", Help: "Order actors stopped for idleness."},
			func() float64 { return float64(am.Passivated.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_order_timers", Help: "Orders with a pending timer."},
			func() float64 { return float64(am.Timers.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_background_calls", Help: "Background WeChat calls queued or running."},
			func() float64 { return float64(am.CallsQueued.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wxpayd_background_calls_rejected_total", Help: "Background calls refused by a full queue (retried by the timer)."},
			func() float64 { return float64(am.CallsRejected.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wxpayd_store_errors_total", Help: "Durable writes or reads that failed."},
			func() float64 { return float64(am.StoreErrors.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_admission_inflight", Help: "Requests in flight per admission lane.", ConstLabels: prometheus.Labels{"lane": "prepay"}},
			func() float64 { return float64(s.prepay.inUse()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxpayd_admission_inflight", Help: "Requests in flight per admission lane.", ConstLabels: prometheus.Labels{"lane": "notify"}},
			func() float64 { return float64(s.notify.inUse()) }),
	}
	if reg != nil {
		for _, c := range append([]prometheus.Collector{m.requests, m.latency, m.notifications, m.admission}, gauges...) {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return m, nil
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	outcome := "ok"
	switch {
	case status >= 500:
		outcome = "server_error"
	case status == 429:
		outcome = "throttled"
	case status >= 400:
		outcome = "client_error"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, outcome).Observe(d.Seconds())
}

func (m *metrics) serve(ctx *fasthttp.RequestCtx) { m.handler(ctx) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
