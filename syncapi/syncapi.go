// Package syncapi serves /sync and /messages. It stores nothing of its own:
// it reads the events the roomserver stored through roomserver.EventReader,
// and a notifier fed by the roomserver's output stream wakes the syncs that
// wait for news. Tokens are positions of that stream in the database, so
// any number of syncapi processes can serve the same clients.
package syncapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// SyncAPI is the running component.
type SyncAPI struct {
	reader   roomserver.EventReader
	notifier *notifier
	sub      bus.Subscription
	log      *slog.Logger

	done      chan struct{} // closed by Close: waiting syncs return
	closeOnce sync.Once
}

// New starts listening to the roomserver's output and registers /sync and
// /messages on the process's router.
func New(ctx context.Context, b *base.Base, reader roomserver.EventReader) (*SyncAPI, error) {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	serverName := ""
	if b.Config != nil {
		serverName = b.Config.ServerName
	}
	s := &SyncAPI{
		reader:   reader,
		notifier: newNotifier(reader, localTo(serverName)),
		log:      log.With("component", "syncapi"),
		done:     make(chan struct{}),
	}
	// The roomserver creates the stream too; doing it here as well lets a
	// process that runs syncapi without the roomserver start first.
	if err := roomserver.Output.Ensure(ctx, b.Bus); err != nil {
		return nil, err
	}
	sub, err := roomserver.Output.ConsumeNew(ctx, b.Bus, s.notifier.onEvent)
	if err != nil {
		return nil, fmt.Errorf("listen to room events: %w", err)
	}
	s.sub = sub
	s.routes(b.Router)
	return s, nil
}

// Close stops listening and lets waiting syncs return.
func (s *SyncAPI) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.sub.Stop()
	})
}

const v3 = "/_matrix/client/v3"

func (s *SyncAPI) routes(r *httputil.Router) {
	r.Handle("GET "+v3+"/sync", httputil.RequireAuth, s.sync)
	r.Handle("GET "+v3+"/rooms/{roomId}/messages", httputil.RequireAuth, s.messages)
}

// localTo says whether a user ID belongs to serverName; without a server
// name every user counts as local.
func localTo(serverName string) func(string) bool {
	if serverName == "" {
		return func(string) bool { return true }
	}
	return func(userID string) bool { return mxid.ServerOf(userID) == serverName }
}
