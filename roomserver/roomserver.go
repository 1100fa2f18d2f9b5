package roomserver

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// How a request becomes stored events:
//
//   - roomserver.go: New wires the component to the bus and the database.
//   - createroom*.go, membership.go, send.go, query.go: the endpoints.
//   - queue.go: one worker per busy room; a room's queued requests form a
//     batch, built in order (batch.go, build.go) and committed in one
//     transaction (commit.go), which also assigns stream positions.
//   - head.go, snapshots.go: a room's head (extremities, current state)
//     and its state snapshots, stored as deltas.
//   - publisher.go: the Output topic, in position order.
//   - reader*.go, visibility.go, clientevent.go: the EventReader.
//   - stateres*.go, v12fix.go: what the roomserver owns of the Matrix
//     rules where gomatrixserverlib falls short.
//   - input*.go, fork.go, outlier*.go: events of other servers (input.go).

// Roomserver is the running component: it serves the endpoints of api.go
// and is the only writer of the rs_ tables.
type Roomserver struct {
	db             *sqlutil.DB
	bus            *bus.Bus
	log            *slog.Logger
	serverName     string
	key            signingkey.Key
	createClock    createClock // unique create-event timestamps (create_clock.go)
	defaultVersion string

	reader    *reader
	queue     *roomQueue
	publisher *publisher
	metrics   *metrics

	heads  *lru[string, *roomHead]            // room heads, owned by room workers
	events *lru[int64, gomatrixserverlib.PDU] // parsed state events, for auth
	txns   *lru[txnKey, string]               // recently committed transactions
	fed    *fedState                          // events of other servers (input.go)

	commitMu sync.Mutex // assigns positions and commits, in order
	lastPos  int64      // guarded by commitMu

	closeOnce sync.Once
}

var _ base.Component = (*Roomserver)(nil)

// New runs the roomserver's migrations, republishes events a crash left
// unpublished, and serves the endpoints of api.go on the bus.
func New(ctx context.Context, b *base.Base) (*Roomserver, error) {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "roomserver")
	if err := b.DB.Migrate(ctx, "roomserver", migrations); err != nil {
		return nil, err
	}
	if err := b.DB.Migrate(ctx, "roomserver_relations", relationMigrations); err != nil {
		return nil, err
	}
	if err := b.DB.Migrate(ctx, "roomserver_rooms", roomMigrations); err != nil {
		return nil, err
	}
	if err := b.DB.Migrate(ctx, "roomserver_search", searchMigrations); err != nil {
		return nil, err
	}
	if err := b.DB.Migrate(ctx, "roomserver_federation", federationMigrations); err != nil {
		return nil, err
	}
	if err := Output.Ensure(ctx, b.Bus); err != nil {
		return nil, err
	}
	if err := catchUp(ctx, b.DB, b.Bus, log); err != nil {
		return nil, fmt.Errorf("roomserver output catch-up: %w", err)
	}
	rs := &Roomserver{
		db:             b.DB,
		bus:            b.Bus,
		log:            log,
		serverName:     b.Config.ServerName,
		key:            b.Key,
		defaultVersion: b.Config.Rooms.DefaultVersion,
		reader:         newReader(b.DB),
		publisher:      newPublisher(b.Bus, log),
		metrics:        newMetrics(b.Metrics),
		heads:          newLRU[string, *roomHead](4096),
		events:         newCostLRU[int64](eventCacheEntries, eventCacheBytes, pduCost),
		txns:           newLRU[txnKey, string](txnCacheSize),
	}
	if rs.defaultVersion == "" {
		rs.defaultVersion = string(gomatrixserverlib.RoomVersionV12)
	}
	if err := b.DB.QueryRowContext(ctx, `SELECT COALESCE(MAX(stream_pos), 0) FROM rs_events WHERE stream_pos > 0`).Scan(&rs.lastPos); err != nil {
		return nil, fmt.Errorf("read last stream position: %w", err)
	}
	rs.queue = newRoomQueue(rs.processBatch)
	go rs.publisher.run()
	if err := rs.serve(); err != nil {
		rs.Close()
		return nil, err
	}
	return rs, nil
}

func (rs *Roomserver) serve() error {
	for _, err := range []error{
		CreateRoom.Serve(rs.bus, rs.createRoom),
		Membership.Serve(rs.bus, rs.membership),
		SendEvent.Serve(rs.bus, rs.sendEvent),
		QueryState.Serve(rs.bus, rs.queryState),
		QueryEvent.Serve(rs.bus, rs.queryEvent),
		ResolveAlias.Serve(rs.bus, rs.resolveAlias),
		QueryRoomsOfUser.Serve(rs.bus, rs.queryRoomsOfUser),
		rs.serveFederation(),                    // input.go
		BuildEvent.Serve(rs.bus, rs.buildEvent), // buildevent.go
	} {
		if err != nil {
			return err
		}
	}
	return rs.serveRooms() // api_rooms.go's endpoints
}

func (rs *Roomserver) serveRooms() error {
	for _, err := range []error{
		SetAlias.Serve(rs.bus, rs.setAlias),
		DeleteAlias.Serve(rs.bus, rs.deleteAlias),
		QueryAliases.Serve(rs.bus, rs.queryAliases),
		QueryVisibility.Serve(rs.bus, rs.queryVisibility),
		SetVisibility.Serve(rs.bus, rs.setVisibility),
		PublicRooms.Serve(rs.bus, rs.publicRooms),
		QueryMembers.Serve(rs.bus, rs.queryMembers),
		QueryJoinedMembers.Serve(rs.bus, rs.queryJoinedMembers),
		Forget.Serve(rs.bus, rs.forget),
		QueryForgotten.Serve(rs.bus, rs.queryForgotten),
		QueryContext.Serve(rs.bus, rs.queryContext),
		TimestampToEvent.Serve(rs.bus, rs.timestampToEvent),
		QueryRelations.Serve(rs.bus, rs.queryRelations),
		QueryThreads.Serve(rs.bus, rs.queryThreads),
		UpgradeRoom.Serve(rs.bus, rs.upgradeRoom),
		QueryHierarchy.Serve(rs.bus, rs.queryHierarchy),
		Report.Serve(rs.bus, rs.report),
		QueryRoomSummary.Serve(rs.bus, rs.queryRoomSummary), // api_summary.go
		SearchRoomEvents.Serve(rs.bus, rs.searchRoomEvents), // api_search.go
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close stops taking requests, finishes the queued ones and publishes
// what they committed. The endpoint subscriptions end only when the bus
// closes (bus.Endpoint.Serve returns no handle): until then a closed
// roomserver answers "shutting down", so close the bus after it.
func (rs *Roomserver) Close() {
	rs.closeOnce.Do(func() {
		rs.queue.close()
		rs.publisher.stop(10 * time.Second)
	})
}

// Reader is the roomserver's own EventReader.
func (rs *Roomserver) Reader() EventReader { return rs.reader }
