// Package federation is the server-server API, in and out: this server's
// keys and the key cache of others (keys.go), signed requests and server
// discovery (client.go), the federation listener that checks X-Matrix
// signatures and the allow-list (router.go), the handlers other servers
// call (routes.go and inbound_*.go), the fedapi endpoints other components
// call (endpoints.go and perform_*.go), and the per-destination senders
// (sender/, wired by sender_wiring.go).
//
// The roomserver owns the rooms: the federation checks signatures and
// hashes and fetches what is missing, then hands events to
// roomserver.InputEvents; it reads rooms through roomserver.FederationReader.
package federation

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/matrix-org/gomatrixserverlib/fclient"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Federation is the running component.
type Federation struct {
	cfg        *config.Config
	db         *sqlutil.DB
	bus        *bus.Bus
	log        *slog.Logger
	key        signingkey.Key
	serverName string
	base       *base.Base

	reader roomserver.FederationReader

	keys    *keyService              // keys.go
	client  fclient.FederationClient // client.go
	out     *outbound                // client.go: transport, discovery, raw HTTP
	router  *inboundRouter           // router.go
	sender  *senderWiring            // sender_wiring.go
	inbound *inboundState            // routes.go
	media   mediaPointer             // media.go: this process's mediaapi, if any

	closers []func()
}

var _ base.Component = (*Federation)(nil)

// New starts the federation: keys, client, listener, senders, endpoints.
func New(ctx context.Context, b *base.Base) (*Federation, error) {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	f := &Federation{
		cfg:        b.Config,
		db:         b.DB,
		bus:        b.Bus,
		log:        log.With("component", "federation"),
		key:        b.Key,
		serverName: b.Config.ServerName,
		base:       b,
		reader:     roomserver.NewFederationReader(b.DB),
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"keys", f.startKeys},           // keys.go
		{"client", f.startClient},       // client.go
		{"router", f.startRouter},       // router.go
		{"routes", f.startRoutes},       // routes.go
		{"sender", f.startSender},       // sender_wiring.go
		{"endpoints", f.startEndpoints}, // endpoints.go
		{"listener", f.startListener},   // router.go
	}
	for _, s := range steps {
		if err := s.run(ctx); err != nil {
			f.Close()
			return nil, fmt.Errorf("federation %s: %w", s.name, err)
		}
	}
	return f, nil
}

// onClose registers what Close undoes, in reverse order.
func (f *Federation) onClose(fn func()) { f.closers = append(f.closers, fn) }

// Close stops the listener, the senders and the endpoints.
func (f *Federation) Close() {
	for i := len(f.closers) - 1; i >= 0; i-- {
		f.closers[i]()
	}
	f.closers = nil
}
