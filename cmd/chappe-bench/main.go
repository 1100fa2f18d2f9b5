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
	pngOut   string
	// initial-sync and busy-sync
	rooms     int
	members   int
	workers   int
	repeat    int
	busyRooms int
	serverPID int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8008", "homeserver base URL")
	flag.StringVar(&o.secret, "secret", "", "registration shared secret (/_synapse/admin/v1/register)")
	flag.StringVar(&o.scenario, "scenario", "all", "send, sync-latency, room-throughput, initial-sync, busy-sync, api or all")
	flag.IntVar(&o.pairs, "pairs", 4, "sync-latency: pairs of users, each pair in its own room")
	flag.IntVar(&o.messages, "messages", 200, "messages per sender (send, sync-latency)")
	flag.IntVar(&o.senders, "senders", 10, "room-throughput: concurrent senders in one room")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "room-throughput: how long to send")
	flag.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	flag.StringVar(&o.pngOut, "png", "", "draw the results as a PNG chart in this file")
	flag.IntVar(&o.rooms, "rooms", 300, "initial-sync: rooms of the syncing user")
	flag.IntVar(&o.members, "members", 300, "initial-sync: members of each room (the syncing user included)")
	flag.IntVar(&o.workers, "workers", 32, "initial-sync: concurrent requests while building the dataset")
	flag.IntVar(&o.repeat, "repeat", 3, "initial-sync: how many times each initial sync is measured")
	flag.IntVar(&o.busyRooms, "busy-rooms", 10, "busy-sync: rooms of the receiver where others send without pause")
	flag.IntVar(&o.serverPID, "server-pid", 0, "the server's process ID, to record its RSS after each scenario (same machine)")
	flag.Parse()
	if o.secret == "" {
		fmt.Fprintln(os.Stderr, "chappe-bench: --secret is required")
		os.Exit(2)
	}
	ctx := context.Background()
	var results []result
	run := func(name string, f func(context.Context, options) ([]result, error)) {
		// initial-sync builds a large dataset: it runs only when named.
		if o.scenario != name && (o.scenario != "all" || name == "initial-sync") {
			return
		}
		rs, err := f(ctx, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chappe-bench: %s: %v\n", name, err)
			os.Exit(1)
		}
		if rss := serverRSS(o.serverPID); rss > 0 && len(rs) > 0 {
			rs[len(rs)-1].RSSMB = rss
		}
		results = append(results, rs...)
	}
	run("send", sequentialSend)
	run("sync-latency", syncLatency)
	run("room-throughput", roomThroughput)
	run("initial-sync", initialSync)
	run("busy-sync", busySync)
	run("api", apiLatency)
	printTable(os.Stdout, results)
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(map[string]any{"url": o.url, "at": time.Now().UTC(), "results": results}, "", "  ")
		if err := os.WriteFile(o.jsonOut, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if o.pngOut != "" {
		if err := drawChart(o.pngOut, results); err != nil {
			fmt.Fprintln(os.Stderr, "chappe-bench: chart:", err)
			os.Exit(1)
		}
	}
}
