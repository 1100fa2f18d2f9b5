package sender

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sender's Prometheus series, per destination: what waits
// (queue depth), transactions sent and failed, PDUs and EDUs delivered.
type metrics struct {
	queue        *prometheus.GaugeVec   // destination, kind (pdu, edu)
	transactions *prometheus.CounterVec // destination, result (sent, failed)
	items        *prometheus.CounterVec // destination, kind
	// failing is the failed attempts in a row: 0 for a healthy
	// destination; at the back-off cap (about 10) it is tried hourly.
	failing *prometheus.GaugeVec // destination
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chappe_federation_sender_queue_depth", Help: "PDUs and EDUs waiting to be sent, per destination.",
		}, []string{"destination", "kind"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chappe_federation_sender_transactions_total", Help: "Transactions sent to other servers, by outcome.",
		}, []string{"destination", "result"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chappe_federation_sender_items_total", Help: "PDUs and EDUs delivered to other servers.",
		}, []string{"destination", "kind"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chappe_federation_sender_failures", Help: "Failed transactions in a row, per destination (0: reachable).",
		}, []string{"destination"}),
	}
	if reg != nil {
		m.queue = register(reg, m.queue)
		m.transactions = register(reg, m.transactions)
		m.items = register(reg, m.items)
		m.failing = register(reg, m.failing)
	}
	return m
}

// register adds c to reg, reusing the collector already registered under
// the same name (a second sender in one process, as in tests).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *metrics) depth(dest string, pdus, edus int) {
	m.queue.WithLabelValues(dest, "pdu").Set(float64(pdus))
	m.queue.WithLabelValues(dest, "edu").Set(float64(edus))
}

func (m *metrics) addDepth(dest string, pdus, edus int) {
	if pdus != 0 {
		m.queue.WithLabelValues(dest, "pdu").Add(float64(pdus))
	}
	if edus != 0 {
		m.queue.WithLabelValues(dest, "edu").Add(float64(edus))
	}
}

func (m *metrics) sent(dest string, pdus, edus int) {
	m.transactions.WithLabelValues(dest, "sent").Inc()
	m.failures(dest, 0)
	m.items.WithLabelValues(dest, "pdu").Add(float64(pdus))
	m.items.WithLabelValues(dest, "edu").Add(float64(edus))
}

func (m *metrics) failed(dest string, inARow int) {
	m.transactions.WithLabelValues(dest, "failed").Inc()
	m.failures(dest, inARow)
}

func (m *metrics) failures(dest string, inARow int) {
	m.failing.WithLabelValues(dest).Set(float64(inARow))
}
