package sender

import (
	"math/rand/v2"
	"time"
)

// Back-off after failed transactions: 5 s, doubling with each failure in
// a row, capped at an hour. At the cap a destination is tried hourly and
// otherwise waits for its next inbound request (Wake): a ministry's
// server that comes back without writing to us still gets its backlog
// within the hour.
const (
	backoffMin = 5 * time.Second
	backoffMax = time.Hour
)

// DefaultBackoff is the wait after the n-th failure in a row, with ±25 %
// jitter so that destinations that failed together (a network outage) do
// not all retry at the same instant.
func DefaultBackoff(failures int) time.Duration {
	d := backoffMax
	if failures < 1 {
		failures = 1
	}
	if shift := failures - 1; shift < 20 {
		d = min(backoffMin<<shift, backoffMax)
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}
