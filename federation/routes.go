package federation

import (
	"context"
	"fmt"
	"sync"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// The handlers other servers call, by family:
//
//   - inbound_send.go, inbound_pdu.go, inbound_gaps.go: PUT /send, its PDUs
//     (checked, then given to the roomserver, gaps filled from the origin)
//   - inbound_edu.go: the EDUs of /send, handed to syncapi
//   - inbound_events.go: /event, /state, /state_ids, /event_auth,
//     /backfill, /get_missing_events
//   - inbound_timestamp.go: /timestamp_to_event
//   - inbound_membership.go: make/send join, leave and knock; invite v1
//     and v2
//   - inbound_query.go: profile, directory, public rooms, devices, keys,
//     OpenID, hierarchy

const (
	v1 = "/_matrix/federation/v1"
	v2 = "/_matrix/federation/v2"
)

// inboundState is what the inbound handlers keep between requests.
type inboundState struct {
	// txnLocks serialises the transactions of one origin, so a retried
	// transaction waits for the first attempt and then gets its answer.
	mu       sync.Mutex
	txnLocks map[string]*sync.Mutex
}

// originLock is the lock of one origin's transactions.
func (s *inboundState) originLock(origin string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.txnLocks[origin]
	if !ok {
		l = &sync.Mutex{}
		s.txnLocks[origin] = l
	}
	return l
}

var inboundMigrations = []sqlutil.Migration{
	{Version: 1, SQL: `
CREATE TABLE fs_inbound_txns (
	origin     TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	response   TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	PRIMARY KEY (origin, txn_id)
);
CREATE INDEX fs_inbound_txns_created ON fs_inbound_txns (created_ms)`},
}

func (f *Federation) startRoutes(ctx context.Context) error {
	if err := f.db.Migrate(ctx, "federation_inbound", inboundMigrations); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	f.inbound = &inboundState{txnLocks: map[string]*sync.Mutex{}}

	f.signed("PUT "+v1+"/send/{txnID}", f.onSend)
	f.mediaRoutes() // media.go

	f.signed("GET "+v1+"/event/{eventId}", f.onEvent)
	f.signed("GET "+v1+"/state/{roomId}", f.onState)
	f.signed("GET "+v1+"/state_ids/{roomId}", f.onStateIDs)
	f.signed("GET "+v1+"/event_auth/{roomId}/{eventId}", f.onEventAuth)
	f.signed("GET "+v1+"/backfill/{roomId}", f.onBackfill)
	f.signed("POST "+v1+"/get_missing_events/{roomId}", f.onGetMissingEvents)
	f.signed("GET "+v1+"/timestamp_to_event/{roomId}", f.onTimestampToEvent)

	f.signed("GET "+v1+"/make_join/{roomId}/{userId}", f.onMakeJoin)
	f.signed("PUT "+v2+"/send_join/{roomId}/{eventId}", f.onSendJoin)
	f.signed("GET "+v1+"/make_leave/{roomId}/{userId}", f.onMakeLeave)
	f.signed("PUT "+v2+"/send_leave/{roomId}/{eventId}", f.onSendLeave)
	f.signed("GET "+v1+"/make_knock/{roomId}/{userId}", f.onMakeKnock)
	f.signed("PUT "+v1+"/send_knock/{roomId}/{eventId}", f.onSendKnock)
	f.signed("PUT "+v1+"/invite/{roomId}/{eventId}", f.onInviteV1)
	f.signed("PUT "+v2+"/invite/{roomId}/{eventId}", f.onInvite)

	f.signed("GET "+v1+"/query/profile", f.onQueryProfile)
	f.signed("GET "+v1+"/query/directory", f.onQueryDirectory)
	f.signed("GET "+v1+"/publicRooms", f.onPublicRoomsGet)
	f.signed("POST "+v1+"/publicRooms", f.onPublicRoomsPost)
	f.signed("GET "+v1+"/user/devices/{userId}", f.onUserDevices)
	f.signed("POST "+v1+"/user/keys/query", f.onUserKeysQuery)
	f.signed("POST "+v1+"/user/keys/claim", f.onUserKeysClaim)
	f.signed("GET "+v1+"/hierarchy/{roomId}", f.onHierarchy)
	// OpenID userinfo is asked by third-party services with a token, not
	// by servers: it is not signed.
	f.handleUnsigned("GET "+v1+"/openid/userinfo", f.onOpenIDUserInfo)
	return nil
}

// signed registers a signed route; every request from a server also tells
// the sender that the server is up (it retries at once what it held back).
func (f *Federation) signed(pattern string, h InboundHandler) {
	f.handle(pattern, func(r *InboundRequest) (any, error) {
		f.wakeSender(r.Origin)
		return h(r)
	})
}
