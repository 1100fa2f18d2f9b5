package federation

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

const tsRoom = "!room:a.test"

// timestampReader is a room as the timestamp code reads it.
type timestampReader struct {
	roomserver.FederationReader
	version  string // "": the room is unknown
	acl      string // "": none
	wasIn    bool   // the asking server had a member in the room
	closest  *roomserver.TimestampedEvent
	start    roomserver.TimelineStart
	servers  []string // joined to the room
	askedFor []any    // ClosestEventForServer's arguments
}

func (r *timestampReader) RoomVersion(_ context.Context, roomID string) (string, bool, error) {
	if roomID != tsRoom || r.version == "" {
		return "", false, nil
	}
	return r.version, true, nil
}

func (r *timestampReader) CurrentState(ctx context.Context, roomID, eventType, stateKey string) (*roomserver.StoredPDU, error) {
	return aclReader{content: r.acl}.CurrentState(ctx, roomID, eventType, stateKey)
}

func (r *timestampReader) ServerWasInRoom(context.Context, string, string) (bool, error) {
	return r.wasIn, nil
}

func (r *timestampReader) ClosestEventForServer(_ context.Context, roomID, server string, ts int64, backwards bool) (*roomserver.TimestampedEvent, error) {
	r.askedFor = []any{roomID, server, ts, backwards}
	return r.closest, nil
}

func (r *timestampReader) TimelineStart(context.Context, string) (roomserver.TimelineStart, error) {
	return r.start, nil
}

func (r *timestampReader) JoinedServers(context.Context, string) ([]string, error) {
	return r.servers, nil
}

// timestampRequest is a request of server b.test.
func timestampRequest(query string) *InboundRequest {
	req := httptest.NewRequest("GET", v1+"/timestamp_to_event/"+tsRoom+"?"+query, nil)
	req.SetPathValue("roomId", tsRoom)
	return &InboundRequest{HTTP: req, Origin: "b.test"}
}

func wantMatrixErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if me, ok := mxerr.As(err); !ok || me.Status != status || me.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
}

// The inbound endpoint: its parameters, who may ask, and its answers.
func TestOnTimestampToEvent(t *testing.T) {
	reader := &timestampReader{version: "10", wasIn: true}
	f := &Federation{reader: reader}

	bad := []struct{ query, code string }{
		{"dir=f", "M_MISSING_PARAM"},
		{"ts=abc&dir=f", "M_INVALID_PARAM"},
		{"ts=-1&dir=f", "M_INVALID_PARAM"},
		{"ts=1.5&dir=b", "M_INVALID_PARAM"},
		{"ts=1000", "M_MISSING_PARAM"},
		{"ts=1000&dir=x", "M_INVALID_PARAM"},
	}
	for _, c := range bad {
		_, err := f.onTimestampToEvent(timestampRequest(c.query))
		wantMatrixErr(t, c.query, err, 400, c.code)
	}

	_, err := f.onTimestampToEvent(timestampRequest("ts=1000&dir=f"))
	wantMatrixErr(t, "nothing found", err, 404, "M_NOT_FOUND")
	if want := []any{tsRoom, "b.test", int64(1000), false}; !slices.Equal(reader.askedFor, want) {
		t.Fatalf("asked %v, want %v", reader.askedFor, want)
	}

	reader.closest = &roomserver.TimestampedEvent{EventID: "$found", OriginServerTS: 900}
	got, err := f.onTimestampToEvent(timestampRequest("ts=1000&dir=b"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(got)
	if string(data) != `{"event_id":"$found","origin_server_ts":900}` {
		t.Fatalf("answer %s", data)
	}
	if want := []any{tsRoom, "b.test", int64(1000), true}; !slices.Equal(reader.askedFor, want) {
		t.Fatalf("asked %v, want %v", reader.askedFor, want)
	}

	// Who may not ask: a server never in the room, one the ACL denies;
	// a room unknown here.
	reader.wasIn = false
	_, err = f.onTimestampToEvent(timestampRequest("ts=1000&dir=b"))
	wantMatrixErr(t, "server never in the room", err, 403, "M_FORBIDDEN")
	reader.wasIn, reader.acl = true, `{"allow": ["*"], "deny": ["b.test"]}`
	_, err = f.onTimestampToEvent(timestampRequest("ts=1000&dir=b"))
	wantMatrixErr(t, "server denied by the ACL", err, 403, "M_FORBIDDEN")
	reader.acl, reader.version = "", ""
	_, err = f.onTimestampToEvent(timestampRequest("ts=1000&dir=b"))
	wantMatrixErr(t, "unknown room", err, 404, "M_NOT_FOUND")
}

// Which remote answers are taken over the local one.
func TestCloserAnswer(t *testing.T) {
	local := &fedapi.TimestampedEvent{EventID: "$local", OriginServerTS: 5000}
	cases := []struct {
		backwards bool
		local     *fedapi.TimestampedEvent
		remote    int64
		want      bool
	}{
		{false, nil, 1000, true},    // at ts
		{false, nil, 3000, true},    // after ts, nothing here
		{false, nil, 999, false},    // the wrong direction
		{false, local, 4999, true},  // closer than the local answer
		{false, local, 5000, false}, // no closer
		{false, local, 6000, false}, // further
		{true, nil, 1000, true},     // at ts
		{true, nil, 10, true},       // before ts, nothing here
		{true, nil, 1001, false},    // the wrong direction
		{true, &fedapi.TimestampedEvent{OriginServerTS: 500}, 600, true},
		{true, &fedapi.TimestampedEvent{OriginServerTS: 500}, 500, false},
		{true, &fedapi.TimestampedEvent{OriginServerTS: 500}, 400, false},
	}
	for _, c := range cases {
		req := &fedapi.TimestampToEventRequest{TS: 1000, Backwards: c.backwards, Local: c.local}
		if got := closerAnswer(req, &fedapi.TimestampedEvent{EventID: "$remote", OriginServerTS: c.remote}); got != c.want {
			t.Errorf("backwards %v, local %+v, remote at %d: %v", c.backwards, c.local, c.remote, got)
		}
	}
}

// The other servers are asked only when the local history starts after
// the timestamp and before the room's creation, and when there is another
// server to ask.
func TestTimestampToEventAsksOnlyPastTheHistory(t *testing.T) {
	reader := &timestampReader{version: "10", servers: []string{"a.test"}}
	f := &Federation{reader: reader, serverName: "a.test", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	ask := func(ts int64) error {
		_, err := f.timestampToEvent(ctx, &fedapi.TimestampToEventRequest{RoomID: tsRoom, TS: ts})
		return err
	}
	cases := []struct {
		what  string
		start roomserver.TimelineStart
		ts    int64
	}{
		{"history from the creation", roomserver.TimelineStart{Complete: true, EarliestTS: 5000}, 1000},
		{"history reaching ts", roomserver.TimelineStart{EarliestTS: 1000}, 1000},
		{"history before ts", roomserver.TimelineStart{EarliestTS: 500}, 1000},
		// Past the history, but no other server in the room: nobody is
		// asked (a request would fail: the Federation has no client).
		{"no other server", roomserver.TimelineStart{EarliestTS: 5000}, 1000},
		{"no history, no other server", roomserver.TimelineStart{Empty: true}, 1000},
	}
	for _, c := range cases {
		reader.start = c.start
		wantMatrixErr(t, c.what, ask(c.ts), 404, "M_NOT_FOUND")
	}
	reader.version = ""
	wantMatrixErr(t, "unknown room", ask(1000), 404, "M_NOT_FOUND")
}
