// Command chappe-bench is a load generator for any Matrix homeserver: it
// registers its users through the Synapse-compatible shared-secret
// endpoint, so the same run measures Chappe and a peer side by side.
//
//	chappe-bench --url http://127.0.0.1:8008 --secret S --scenario all
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

type options struct {
	url      string
	secret   string
	scenario string
	pairs    int
	messages int
	senders  int
	duration time.Duration
	jsonOut  string
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8008", "homeserver base URL")
	flag.StringVar(&o.secret, "secret", "", "registration shared secret (/_synapse/admin/v1/register)")
	flag.StringVar(&o.scenario, "scenario", "all", "send, sync-latency, room-throughput or all")
	flag.IntVar(&o.pairs, "pairs", 4, "sync-latency: pairs of users, each pair in its own room")
	flag.IntVar(&o.messages, "messages", 200, "messages per sender (send, sync-latency)")
	flag.IntVar(&o.senders, "senders", 10, "room-throughput: concurrent senders in one room")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "room-throughput: how long to send")
	flag.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	flag.Parse()
	if o.secret == "" {
		fmt.Fprintln(os.Stderr, "chappe-bench: --secret is required")
		os.Exit(2)
	}
	ctx := context.Background()
	var results []result
	run := func(name string, f func(context.Context, options) ([]result, error)) {
		if o.scenario != "all" && o.scenario != name {
			return
		}
		rs, err := f(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chappe-bench: %s: %v\n", name, err)
			os.Exit(1)
		}
		results = append(results, rs...)
	}
	run("send", sequentialSend)
	run("sync-latency", syncLatency)
	run("room-throughput", roomThroughput)
	printTable(os.Stdout, results)
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(map[string]any{"url": o.url, "at": time.Now().UTC(), "results": results}, "", "  ")
		if err := os.WriteFile(o.jsonOut, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
