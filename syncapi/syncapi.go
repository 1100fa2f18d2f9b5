// Package syncapi serves /sync and /messages, and owns the per-user data
// that flows through /sync: account data (tags, m.fully_read), receipts,
// typing notifications, presence and stored filters, with the endpoints
// that set them. It reads room events through roomserver.EventReader (the
// roomserver's tables, never copied) and stores its own data in sy_
// tables. Two streams wake the syncs that wait for news: the roomserver's
// output and syncapi's own (SYNC_OUTPUT), which every syncapi process
// reads. Tokens are positions read from the database and from that shared
// stream, so any number of syncapi processes can serve the same clients.
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
	store    *store
	bus      *bus.Bus
	notifier *notifier
	subs     []bus.Subscription
	log      *slog.Logger
	// presenceEnabled is the presence.enabled switch: off, presence is
	// neither stored nor sent (see presence.go).
	presenceEnabled bool
	touches         onlineTouches  // users recently seen online (presence_touch.go)
	toDeviceAcked   ackedPositions // to-device positions acknowledged (todevice.go)
	push            *pushState     // push rules, notification counts, pushers (push_consume.go)

	done      chan struct{} // closed by Close: waiting syncs return
	closeOnce sync.Once

	history historyBackfill // older history of federated rooms (messages_backfill.go)

	feed roomserver.CommitFeed // the roomserver of this process, if any (feed.go)
}

// New migrates syncapi's tables, starts listening to the roomserver's
// output and to syncapi's own, and registers the endpoints on the
// process's router.
func New(ctx context.Context, b *base.Base, reader roomserver.EventReader, opts ...Option) (*SyncAPI, error) {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	serverName, presence := "", true
	if b.Config != nil {
		serverName, presence = b.Config.ServerName, b.Config.Presence.Enabled
	}
	st, err := openStore(ctx, b.DB)
	if err != nil {
		return nil, fmt.Errorf("syncapi storage: %w", err)
	}
	s := &SyncAPI{
		reader:          reader,
		store:           st,
		bus:             b.Bus,
		notifier:        newNotifier(reader, localTo(serverName)),
		log:             log.With("component", "syncapi"),
		presenceEnabled: presence,
		done:            make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	// The roomserver creates its stream too; doing it here as well lets a
	// process that runs syncapi without the roomserver start first.
	if err := roomserver.Output.Ensure(ctx, b.Bus); err != nil {
		return nil, err
	}
	if err := Output.Ensure(ctx, b.Bus); err != nil {
		return nil, err
	}
	if s.feed == nil {
		sub, err := roomserver.Output.ConsumeNew(ctx, b.Bus, s.notifier.onEvent)
		if err != nil {
			return nil, fmt.Errorf("listen to room events: %w", err)
		}
		s.subs = append(s.subs, sub)
	}
	sub, err := Output.ConsumeNew(ctx, b.Bus, s.onOutput) // presence_touch.go
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("listen to sync output: %w", err)
	}
	s.subs = append(s.subs, sub)
	s.routes(b.Router)
	if err := s.startPush(ctx, b.Router); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startE2EE(ctx); err != nil { // devicelists_start.go
		s.Close()
		return nil, err
	}
	if s.feed != nil {
		s.followFeed() // feed.go
	}
	return s, nil
}

// Close stops listening and lets waiting syncs return.
func (s *SyncAPI) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		for _, sub := range s.subs {
			sub.Stop()
		}
	})
}

const v3 = "/_matrix/client/v3"

func (s *SyncAPI) routes(r *httputil.Router) {
	auth := httputil.RequireAuth
	r.Handle("GET "+v3+"/sync", auth, s.sync)
	r.Handle("GET "+v3+"/rooms/{roomId}/messages", auth, s.messages)

	r.Handle("POST "+v3+"/user/{userId}/filter", auth, s.postFilter)
	r.Handle("GET "+v3+"/user/{userId}/filter/{filterId}", auth, s.getFilter)

	r.Handle("PUT "+v3+"/user/{userId}/account_data/{type}", auth, s.putAccountData)
	r.Handle("GET "+v3+"/user/{userId}/account_data/{type}", auth, s.getAccountData)
	r.Handle("PUT "+v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", auth, s.putAccountData)
	r.Handle("GET "+v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", auth, s.getAccountData)

	r.Handle("GET "+v3+"/user/{userId}/rooms/{roomId}/tags", auth, s.getTags)
	r.Handle("PUT "+v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", auth, s.putTag)
	r.Handle("DELETE "+v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", auth, s.deleteTag)

	r.Handle("POST "+v3+"/rooms/{roomId}/receipt/{receiptType}/{eventId}", auth, s.postReceipt)
	r.Handle("POST "+v3+"/rooms/{roomId}/read_markers", auth, s.postReadMarkers)
	r.Handle("PUT "+v3+"/rooms/{roomId}/typing/{userId}", auth, s.putTyping)

	r.Handle("GET "+v3+"/presence/{userId}/status", auth, s.getPresence)
	r.Handle("PUT "+v3+"/presence/{userId}/status", auth, s.putPresence)
	s.routeSliding(r) // simplified sliding sync, sliding.go
	s.routePeek(r)    // room previews: initialSync, peeking /events (peek.go)
}

// localTo says whether a user ID belongs to serverName; without a server
// name every user counts as local.
func localTo(serverName string) func(string) bool {
	if serverName == "" {
		return func(string) bool { return true }
	}
	return func(userID string) bool { return mxid.ServerOf(userID) == serverName }
}
