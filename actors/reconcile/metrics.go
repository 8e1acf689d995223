package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the wxpayd_reconcile_* series. Names are a contract with the
// alert rules in deploy/.
type metrics struct {
	lastDate      prometheus.Gauge
	discrepancies *prometheus.GaugeVec
	runs          *prometheus.CounterVec
	repairs       *prometheus.CounterVec
	duration      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lastDate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxpayd_reconcile_last_date",
			Help: "Start (Unix seconds, Beijing midnight) of the latest day whose reconciliation finished; 0 before the first.",
		}),
		discrepancies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wxpayd_reconcile_discrepancies",
			Help: "Unresolved discrepancies between wxpayd and WeChat's bills of the last 90 days, by class.",
		}, []string{"class"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxpayd_reconcile_runs_total",
			Help: "Reconciliation attempts by outcome: done, waiting (bill not ready), failed.",
		}, []string{"outcome"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxpayd_reconcile_repairs_total",
			Help: "Payments found by reconciliation and sent to their orders, by outcome: repaired, failed.",
		}, []string{"outcome"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wxpayd_reconcile_last_duration_seconds",
			Help: "How long the latest finished reconciliation attempt took.",
		}),
	}
	for _, c := range Classes {
		m.discrepancies.WithLabelValues(c)
	}
	for _, o := range []string{StatusDone, StatusWaiting, StatusFailed} {
		m.runs.WithLabelValues(o)
	}
	for _, o := range []string{"repaired", "failed"} {
		m.repairs.WithLabelValues(o)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lastDate, m.discrepancies, m.runs, m.repairs, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
