package sender

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/internal/promutil"
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
		m.queue = promutil.Register(reg, m.queue)
		m.transactions = promutil.Register(reg, m.transactions)
		m.items = promutil.Register(reg, m.items)
		m.failing = promutil.Register(reg, m.failing)
	}
	return m
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
