package roomserver

import (
	"fmt"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// The event closest to a timestamp for another server: in each direction,
// ties broken by position, across pages, only among the events the
// server may see.
func TestClosestEventForServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		fr := NewFederationReader(env.db)
		r := newRemote(t)
		alice, carol := user("alice"), remoteUser("carol")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		create := env.state(alice, roomID)["m.room.create|"].EventID
		// The events before this one are shared history: visible to a
		// server with a user joined now.
		histVis, err := env.sendState(alice, roomID, spec.MRoomHistoryVisibility, "", map[string]string{"history_visibility": "joined"})
		if err != nil {
			t.Fatal(err)
		}
		// Timestamps are set by hand: the clock is too coarse to order
		// events sent in a row.
		setTS := func(eventID string, ts int64) {
			t.Helper()
			if _, err := env.db.ExecContext(env.ctx, `UPDATE rs_events SET origin_server_ts = $1 WHERE event_id = $2`, ts, eventID); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range env.timelineIDs(roomID) {
			setTS(id, 1000)
		}
		// More than a page of events carol's server may not see, all at
		// one timestamp.
		var hidden []string
		for i := range timestampPage + 5 {
			id := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": fmt.Sprintf("before %d", i)})
			setTS(id, 2000)
			hidden = append(hidden, id)
		}
		_, join := env.joinRemote(r, roomID, carol)
		setTS(join.EventID(), 3000)
		tied1 := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "tied 1"})
		tied2 := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "tied 2"})
		setTS(tied1, 4000)
		setTS(tied2, 4000)
		last := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "last"})
		setTS(last, 5000)

		closest := func(server string, ts int64, backwards bool) string {
			t.Helper()
			ev, err := fr.ClosestEventForServer(env.ctx, roomID, server, ts, backwards)
			if err != nil {
				t.Fatal(err)
			}
			if ev == nil {
				return ""
			}
			return ev.EventID
		}
		cases := []struct {
			server    string
			ts        int64
			backwards bool
			want      string
		}{
			// This server sees everything.
			{testServer, 2000, false, hidden[0]},
			{testServer, 2000, true, hidden[len(hidden)-1]},
			{testServer, 2500, true, hidden[len(hidden)-1]},
			{testServer, 4000, false, tied1},
			{testServer, 4000, true, tied2},
			{testServer, 4500, false, last},
			{testServer, 5001, false, ""},
			{testServer, 999, true, ""},
			// Carol's server sees the shared history and what follows
			// her join, not what was said in between: past the hidden
			// pages in both directions.
			{remoteName, 0, false, create},
			{remoteName, 1500, false, join.EventID()},
			{remoteName, 2000, false, join.EventID()},
			{remoteName, 2999, true, histVis},
			{remoteName, 3000, true, join.EventID()},
			{remoteName, 4500, true, tied2},
		}
		for _, c := range cases {
			if got := closest(c.server, c.ts, c.backwards); got != c.want {
				t.Errorf("%s from %d (backwards %v): %q, want %q", c.server, c.ts, c.backwards, got, c.want)
			}
		}
		if ev, err := fr.ClosestEventForServer(env.ctx, "!unknown:"+testServer, remoteName, 0, false); err != nil || ev != nil {
			t.Errorf("unknown room: %v %v", ev, err)
		}
	})
}

// Where the stored timeline starts: at the creation in a room made here,
// at the join in a room joined over federation.
func TestTimelineStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		fr := NewFederationReader(env.db)
		alice := user("alice")
		local := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		msg := env.mustSend(alice, local, "m.room.message", map[string]string{"body": "hi"})
		// A clock behind: the earliest timestamp is not the first event's.
		if _, err := env.db.ExecContext(env.ctx, `UPDATE rs_events SET origin_server_ts = 5 WHERE event_id = $1`, msg); err != nil {
			t.Fatal(err)
		}
		start, err := fr.TimelineStart(env.ctx, local)
		if err != nil || !start.Complete || start.Empty || start.EarliestTS != 5 {
			t.Fatalf("local room: %+v %v", start, err)
		}

		r := newRemote(t)
		d, _, join := remoteRoomWithMembers(t, r, "10", 2, alice)
		if _, err := StoreJoinedRoom.Call(env.ctx, env.bus, &StoreJoinedRoomRequest{
			RoomVersion: "10", JoinEvent: join.JSON(), State: stateJSON(d),
		}); err != nil {
			t.Fatal(err)
		}
		start, err = fr.TimelineStart(env.ctx, d.roomID)
		if err != nil || start.Complete || start.Empty || start.EarliestTS != int64(join.OriginServerTS()) {
			t.Fatalf("joined room: %+v %v (join at %d)", start, err, join.OriginServerTS())
		}

		start, err = fr.TimelineStart(env.ctx, "!unknown:"+testServer)
		if err != nil || !start.Empty || start.Complete {
			t.Fatalf("unknown room: %+v %v", start, err)
		}
	})
}
