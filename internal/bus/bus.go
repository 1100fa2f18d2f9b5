// Package bus is how Chappe's components talk: typed request/reply
// endpoints (Endpoint) and durable JetStream streams (Topic) behind Go
// methods. A component calls a method; the subjects, the encoding and the
// stream set-up stay here.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options says which NATS to use.
type Options struct {
	// URLs of an external NATS JetStream cluster. Empty: run NATS inside
	// this process with its JetStream store in StoreDir.
	URLs []string
	// StoreDir is the embedded server's JetStream directory.
	StoreDir string
	// Listen, if set, opens a TCP listener on the embedded server
	// ("127.0.0.1:4222") so that other processes can share it.
	Listen string
	// Prefix namespaces subjects and stream names, so several homeservers
	// (tests, staging) can share one NATS cluster.
	Prefix string
	// NoLocalCalls sends every endpoint call through NATS, even to a
	// handler of this process (tests of the wire path).
	NoLocalCalls bool
	// Replicas of each stream on an external cluster (1 by default).
	Replicas int
	// SyncAlways makes the embedded JetStream fsync every message.
	SyncAlways bool
	Logger     *slog.Logger
}

// Bus is a connection to NATS with JetStream.
type Bus struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	server   *server.Server
	prefix   string
	replicas int
	log      *slog.Logger
	inflight chan struct{} // bounds concurrently running request handlers
	lag      *consumerLag
	local    localEndpoints // endpoints served by this process (local.go)
}

// Open starts the embedded server or connects to the external cluster.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{
		prefix:   sanitizePrefix(opts.Prefix),
		replicas: max(opts.Replicas, 1),
		log:      log,
		inflight: make(chan struct{}, 512),
		lag:      newConsumerLag(),
	}
	b.local.disabled = opts.NoLocalCalls
	connOpts := []nats.Option{
		nats.Name("chappe"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }),
	}
	var url string
	if len(opts.URLs) == 0 {
		srv, err := startEmbedded(opts)
		if err != nil {
			return nil, err
		}
		b.server = srv
		url = srv.ClientURL()
		connOpts = append(connOpts, nats.InProcessServer(srv))
	} else {
		url = strings.Join(opts.URLs, ",")
	}
	nc, err := nats.Connect(url, connOpts...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	b.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b.JS = js
	if _, err := js.AccountInfo(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("nats at %s has no JetStream (start it with -js): %w", url, err)
	}
	return b, nil
}

// EmbeddedMaxPayload is the largest message the embedded NATS takes. An
// external cluster needs the same max_payload (docs/federation.md).
const EmbeddedMaxPayload = 8 << 20

func startEmbedded(opts Options) (*server.Server, error) {
	if opts.StoreDir == "" {
		return nil, fmt.Errorf("embedded nats needs a store directory")
	}
	if err := os.MkdirAll(opts.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("create nats store: %w", err)
	}
	sopts := &server.Options{
		ServerName: "chappe-embedded",
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		DontListen: opts.Listen == "",
		NoSigs:     true,
		NoLog:      true,
		SyncAlways: opts.SyncAlways,
		// NATS's default is 1 MB; an inbound /send transaction's events
		// (50 PDUs of up to 64 KB) may pass it. A big room's join no
		// longer needs it: it travels in parts of ≤ 512 KB.
		MaxPayload: EmbeddedMaxPayload,
	}
	if opts.Listen != "" {
		host, port, err := splitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats.listen: %w", err)
		}
		sopts.Host, sopts.Port = host, port
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats did not start")
	}
	return srv, nil
}

// Close drains the connection and stops the embedded server.
func (b *Bus) Close() {
	b.forgetLocal()
	if b.NC != nil {
		_ = b.NC.Drain()
		b.NC.Close()
	}
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
}

// Subject namespaces a subject with the bus prefix.
func (b *Bus) Subject(s string) string {
	if b.prefix == "" {
		return "chappe." + s
	}
	return b.prefix + "." + s
}

// StreamName namespaces a stream name with the bus prefix.
func (b *Bus) StreamName(s string) string {
	if b.prefix == "" {
		return "CHAPPE_" + s
	}
	return strings.ToUpper(b.prefix) + "_" + s
}

func sanitizePrefix(p string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, p)
}
