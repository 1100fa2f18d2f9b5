package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// result is one measured figure set of a scenario.
type result struct {
	Scenario string  `json:"scenario"`
	Count    int     `json:"count"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	PerSec   float64 `json:"per_second,omitempty"`
	Bytes    int     `json:"response_bytes,omitempty"`
	RSSMB    float64 `json:"server_rss_mb,omitempty"` // after the scenario, with --server-pid
	Note     string  `json:"note,omitempty"`
}

func summarise(name string, samples []time.Duration, elapsed time.Duration) result {
	slices.Sort(samples)
	r := result{Scenario: name, Count: len(samples)}
	if len(samples) == 0 {
		return r
	}
	r.P50ms = ms(percentile(samples, 0.50))
	r.P99ms = ms(percentile(samples, 0.99))
	r.MaxMs = ms(samples[len(samples)-1])
	if elapsed > 0 {
		r.PerSec = float64(len(samples)) / elapsed.Seconds()
	}
	return r
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printTable(w io.Writer, rs []result) {
	fmt.Fprintf(w, "%-52s %8s %10s %10s %10s %10s %10s %8s  %s\n", "scenario", "count", "p50 ms", "p99 ms", "max ms", "per s", "bytes", "RSS MB", "note")
	for _, r := range rs {
		fmt.Fprintf(w, "%-52s %8d %10.2f %10.2f %10.2f %10.0f %10d %8.0f  %s\n", r.Scenario, r.Count, r.P50ms, r.P99ms, r.MaxMs, r.PerSec, r.Bytes, r.RSSMB, r.Note)
	}
}
