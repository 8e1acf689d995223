package consumer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	written, committed, deadLetters      prometheus.Counter
	writeErrors, commitErrors, dlqErrors prometheus.Counter
	batchSeconds                         prometheus.Histogram
	lag                                  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		written:      prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_sink_events_written_total", Help: "Events the sink accepted."}),
		committed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_sink_messages_committed_total", Help: "Kafka messages whose offsets were committed."}),
		deadLetters:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_sink_dead_letters_total", Help: "Messages sent to the dead-letter topic."}),
		writeErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_sink_write_errors_total", Help: "Failed sink writes (retried)."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_sink_commit_errors_total", Help: "Failed offset commits."}),
		dlqErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "wxpayd_sink_dlq_errors_total", Help: "Failed dead-letter publishes (retried)."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wxpayd_sink_batch_seconds", Help: "Time to store one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		lag:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "wxpayd_sink_lag_seconds", Help: "Age of the oldest event of the last stored batch when it was stored."}),
	}
	if reg == nil {
		return m, nil
	}
	// A second consumer on the same registry (a restart in one process)
	// shares the first one's collectors.
	var err error
	for _, c := range []*prometheus.Counter{&m.written, &m.committed, &m.deadLetters, &m.writeErrors, &m.commitErrors, &m.dlqErrors} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.batchSeconds, err = register(reg, m.batchSeconds); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered in its
// place.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, err
}
