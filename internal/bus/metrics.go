package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// consumerLag reports, at each scrape, how many messages every consumer of
// this process has yet to process: the first sign of a stuck component.
type consumerLag struct {
	mu        sync.Mutex
	consumers map[string]tracked
	desc      *prometheus.Desc
}

type tracked struct {
	stream string
	cons   jetstream.Consumer
}

func newConsumerLag() *consumerLag {
	return &consumerLag{
		consumers: map[string]tracked{},
		desc: prometheus.NewDesc("chappe_stream_consumer_pending",
			"Messages of a stream not yet processed by a consumer of this process.",
			[]string{"stream", "consumer"}, nil),
	}
}

func (c *consumerLag) track(name, stream string, cons jetstream.Consumer) {
	c.mu.Lock()
	c.consumers[name] = tracked{stream: stream, cons: cons}
	c.mu.Unlock()
}

func (c *consumerLag) untrack(name string) {
	c.mu.Lock()
	delete(c.consumers, name)
	c.mu.Unlock()
}

func (c *consumerLag) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *consumerLag) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	all := make(map[string]tracked, len(c.consumers))
	for k, v := range c.consumers {
		all[k] = v
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name, t := range all {
		var pending uint64
		if info, err := t.cons.Info(ctx); err == nil {
			pending = info.NumPending + uint64(info.NumAckPending)
		} else if info := t.cons.CachedInfo(); info != nil {
			pending = info.NumPending + uint64(info.NumAckPending)
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(pending), t.stream, name)
	}
}

// RegisterMetrics adds the bus's gauges to a registry.
func (b *Bus) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(b.lag)
}
