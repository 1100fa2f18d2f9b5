package syncapi

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/userapi"
)

// slidingPath is simplified sliding sync's unstable endpoint, the one
// Element X calls when /versions lists org.matrix.simplified_msc3575.
const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// slidingSync serves simplified sliding sync (MSC4186). It reuses /sync's
// readers and notifier; what it adds is the per-connection record (in the
// database, sliding_store.go), the ranked room list (sliding_lists.go) and
// per-room results (sliding_room.go).
type slidingSync struct {
	api   *SyncAPI
	facts *factsCache

	schemaMu sync.Mutex
	schemaOK bool

	sweptMS atomic.Int64 // when expired connections were last swept
}

func newSlidingSync(s *SyncAPI) *slidingSync {
	return &slidingSync{api: s, facts: newFactsCache(s.reader)}
}

// routeSliding registers the endpoint (called from routes).
func (s *SyncAPI) routeSliding(r *httputil.Router) {
	r.Handle("POST "+slidingPath, httputil.RequireAuth, newSlidingSync(s).serve)
}

// ensureSchema migrates the sliding sync tables on first use: their
// migrations are apart from syncapi's own list (see sliding_store.go).
func (ss *slidingSync) ensureSchema(ctx context.Context) error {
	ss.schemaMu.Lock()
	defer ss.schemaMu.Unlock()
	if ss.schemaOK {
		return nil
	}
	if err := ss.api.store.db.Migrate(ctx, "syncapi_sliding", slidingMigrations); err != nil {
		return err
	}
	ss.schemaOK = true
	return nil
}

// sweep deletes expired connections, at most every slidingSweepEvery per
// process, in the background: the request that triggers it does not wait.
func (ss *slidingSync) sweep() {
	now := time.Now().UnixMilli()
	last := ss.sweptMS.Load()
	if now-last < slidingSweepEvery.Milliseconds() || !ss.sweptMS.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ss.api.store.sweepSlidingConns(ctx); err != nil {
			ss.api.log.Warn("sliding sync: deleting expired connections failed", "err", err)
		}
	}()
}

// slidingResponse is the answer.
type slidingResponse struct {
	Pos        string                        `json:"pos"`
	Lists      map[string]slidingListResult  `json:"lists"`
	Rooms      map[string]*slidingRoomResult `json:"rooms"`
	Extensions slidingExtensionsResponse     `json:"extensions"`
}

type slidingListResult struct {
	Count int `json:"count"`
}

// empty is true when nothing new is told: a long-poll keeps waiting.
func (r *slidingResponse) empty() bool {
	return len(r.Rooms) == 0 && r.Extensions.empty()
}

// serve handles one request. Without pos it starts the connection afresh
// and answers at once; with pos it answers with what changed since, waiting
// up to timeout when nothing did.
func (ss *slidingSync) serve(req *httputil.Request) (any, error) {
	ctx := req.Context()
	if err := ss.ensureSchema(ctx); err != nil {
		return nil, err
	}
	ss.sweep()
	sr, err := parseSlidingRequest(req)
	if err != nil {
		return nil, err
	}
	s := ss.api
	userID := req.Device.UserID
	key := slidingConnKey{userID: userID, deviceID: req.Device.DeviceID, connID: sr.ConnID}
	var (
		connNID int64
		prev    = &slidingConnState{Rooms: map[string]slidingRoomState{}}
		since   streamPos
		posID   int64
	)
	if sr.Pos != "" {
		p, err := parseSlidingPos(sr.Pos)
		if err != nil {
			return nil, err
		}
		if connNID, prev, err = s.store.slidingPosition(ctx, key, p.id); err != nil {
			return nil, err
		}
		since, posID = p.stream, p.id
	} else if connNID, err = s.store.newSlidingConn(ctx, key); err != nil {
		return nil, err
	}
	if s.presenceEnabled && sr.setPresence != "" {
		if err := s.setPresence(ctx, userID, sr.setPresence, nil, false); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(sr.timeout)
	for {
		now, err := s.currentPos(ctx)
		if err != nil {
			return nil, err
		}
		now = now.union(since)
		sb := &slidingBuilder{ss: ss, api: s, req: sr, device: req.Device, userID: userID,
			initial: sr.Pos == "", since: since, now: now, prev: prev}
		resp, next, err := sb.build(ctx)
		if err != nil {
			return nil, err
		}
		if sr.Pos == "" || !resp.empty() || !s.waitForNews(ctx, userID, now, deadline) {
			id := posID
			if id == 0 || !next.equal(prev) {
				if id, err = s.store.saveSlidingPosition(ctx, connNID, posID, next); err != nil {
					return nil, err
				}
			}
			resp.Pos = slidingPos{id: id, stream: now}.String()
			return resp, nil
		}
	}
}

// slidingBuilder builds one response.
type slidingBuilder struct {
	ss      *slidingSync
	api     *SyncAPI
	req     *slidingRequest
	device  *userapi.Device
	userID  string
	initial bool      // no pos: a new connection
	since   streamPos // the pos's stream positions (zero when initial)
	now     streamPos
	prev    *slidingConnState

	direct map[string]bool            // rooms in m.direct
	tags   map[string]map[string]bool // room → its tags

	mu   sync.Mutex // guards resp and next: rooms are built in parallel
	resp *slidingResponse
	next *slidingConnState
	// sent are the rooms in this response with their timeline event IDs,
	// for the extensions; fresh are those sent from their start.
	sent  map[string][]string
	fresh map[string]bool
	// unread are the unread counts of the rooms to consider (sliding_e2ee.go).
	unread map[string]unreadNotifications
	// history leaves out of the timelines what the user may not see.
	history *historyFilter
}

// build works out the room list, the rooms to send and the extensions;
// next is the connection's record once the client has the response.
func (sb *slidingBuilder) build(ctx context.Context) (*slidingResponse, *slidingConnState, error) {
	sb.resp = &slidingResponse{Lists: map[string]slidingListResult{}, Rooms: map[string]*slidingRoomResult{}}
	sb.next = &slidingConnState{Rooms: make(map[string]slidingRoomState, len(sb.prev.Rooms))}
	for id, r := range sb.prev.Rooms {
		sb.next.Rooms[id] = r
	}
	sb.sent, sb.fresh = map[string][]string{}, map[string]bool{}
	if err := sb.loadAccountData(ctx); err != nil {
		return nil, nil, err
	}
	entries, err := sb.roomList(ctx)
	if err != nil {
		return nil, nil, err
	}
	matched, err := sb.applyLists(ctx, entries)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]*slidingEntry, len(entries))
	for i := range entries {
		byID[entries[i].roomID] = &entries[i]
	}
	// Each room's config is the union of those of the lists and the
	// subscription that match it.
	configs := map[string]*slidingRoomConfig{}
	merge := func(roomID string, c *slidingRoomConfig) {
		if cur := configs[roomID]; cur != nil {
			c = &slidingRoomConfig{limit: max(cur.limit, c.limit), state: cur.state.union(c.state)}
		}
		configs[roomID] = c
	}
	for roomID, lists := range matched {
		for _, name := range lists {
			merge(roomID, &sb.req.Lists[name].slidingRoomConfig)
		}
	}
	for roomID, c := range sb.req.Subs {
		// Rooms the user is not (or was never) in are ignored.
		if byID[roomID] != nil {
			merge(roomID, c)
		}
	}
	if err := sb.loadUnread(ctx, configs); err != nil {
		return nil, nil, err
	}
	sb.history = newHistoryFilter(sb.api.reader, sb.userID)
	for roomID := range configs {
		sb.history.consider(roomID)
	}
	var jobs []roomJob
	for roomID, c := range configs {
		e := byID[roomID]
		lists := matched[roomID]
		jobs = append(jobs, func(ctx context.Context) error {
			res, state, err := sb.room(ctx, e, c)
			if err != nil || res == nil {
				return err
			}
			res.Lists = lists
			sb.mu.Lock()
			defer sb.mu.Unlock()
			sb.resp.Rooms[roomID] = res
			sb.next.Rooms[roomID] = state
			return nil
		})
	}
	if err := runParallel(ctx, maxParallelRooms, jobs); err != nil {
		return nil, nil, err
	}
	// Rooms no longer listed are dropped from the record, except those
	// whose leave or ban was told: they stay, so that they are not listed
	// again, and a return is sent from the room's start.
	for id, r := range sb.next.Rooms {
		if byID[id] == nil && !gone(r.Membership) {
			delete(sb.next.Rooms, id)
		}
	}
	if err := sb.extensions(ctx, configs, matched, byID); err != nil {
		return nil, nil, err
	}
	return sb.resp, sb.next, nil
}

// loadAccountData reads what the list filters need of the user's account
// data: m.direct and the rooms' tags.
func (sb *slidingBuilder) loadAccountData(ctx context.Context) error {
	sb.direct, sb.tags = map[string]bool{}, map[string]map[string]bool{}
	rows, err := sb.api.store.accountDataChanges(ctx, sb.userID, 0, sb.now.Stream)
	if err != nil {
		return err
	}
	for _, r := range rows {
		switch {
		case r.RoomID == "" && r.Type == "m.direct":
			var direct map[string][]string
			_ = json.Unmarshal(r.Content, &direct) // malformed: no DM
			for _, rooms := range direct {
				for _, id := range rooms {
					sb.direct[id] = true
				}
			}
		case r.RoomID != "" && r.Type == "m.tag":
			var c struct {
				Tags map[string]json.RawMessage `json:"tags"`
			}
			_ = json.Unmarshal(r.Content, &c)
			for t := range c.Tags {
				if sb.tags[r.RoomID] == nil {
					sb.tags[r.RoomID] = map[string]bool{}
				}
				sb.tags[r.RoomID][t] = true
			}
		}
	}
	return nil
}
