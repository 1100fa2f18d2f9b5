package roomserver

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/internal/promutil"
)

// metrics are the roomserver's Prometheus series: events stored (rate =
// events per second), batch sizes and commit latency.
type metrics struct {
	events    prometheus.Counter
	batchSize prometheus.Histogram
	commit    prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chappe_roomserver_events_total", Help: "Events stored by the roomserver.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chappe_roomserver_batch_events", Help: "Events committed per transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chappe_roomserver_commit_seconds", Help: "Time to commit a batch, position lock included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		m.events = promutil.Register(reg, m.events)
		m.batchSize = promutil.Register(reg, m.batchSize)
		m.commit = promutil.Register(reg, m.commit)
	}
	return m
}

func (m *metrics) observeCommit(events int, d time.Duration) {
	m.events.Add(float64(events))
	m.batchSize.Observe(float64(events))
	m.commit.Observe(d.Seconds())
}
