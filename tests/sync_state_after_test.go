package tests

import (
	"encoding/json"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

type stateAfterSync struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			State      struct{ Events []ssEvent } `json:"state"`
			StateAfter *struct {
				Events []ssEvent `json:"events"`
			} `json:"state_after"`
			Unstable *struct {
				Events []ssEvent `json:"events"`
			} `json:"org.matrix.msc4222.state_after"`
		} `json:"join"`
		Knock map[string]struct {
			KnockState struct {
				Events []json.RawMessage `json:"events"`
			} `json:"knock_state"`
		} `json:"knock"`
	} `json:"rooms"`
}

func getSync(t *testing.T, c *mautrix.Client, query string) stateAfterSync {
	t.Helper()
	status, data := doRequest(t, "GET", c.HomeserverURL.String()+"/_matrix/client/v3/sync?"+query, c.AccessToken, "")
	if status != http.StatusOK {
		t.Fatalf("sync %s: %d %s", query, status, data)
	}
	var out stateAfterSync
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func hasEvent(evs []ssEvent, typ, key string) bool {
	for _, ev := range evs {
		if ev.Type == typ && ev.StateKey != nil && *ev.StateKey == key {
			return true
		}
	}
	return false
}

// MSC4222: state_after is the state at the end of the timeline, a state
// event of the timeline included; both parameter names work.
func TestSyncStateAfter(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)
	first := getSync(t, alice, "use_state_after=true&timeout=0")
	room := first.Rooms.Join[string(roomID)]
	if room.StateAfter == nil || room.Unstable == nil || len(room.State.Events) != 0 ||
		!hasEvent(room.StateAfter.Events, "m.room.create", "") || !hasEvent(room.StateAfter.Events, "m.room.member", string(bob.UserID)) {
		t.Fatalf("initial state_after: %+v", room)
	}
	must[*mautrix.RespSendEvent](t)(alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": "nouveau"}))
	next := getSync(t, alice, "org.matrix.msc4222.use_state_after=true&timeout=0&since="+first.NextBatch)
	room = next.Rooms.Join[string(roomID)]
	if room.StateAfter == nil || len(room.StateAfter.Events) != 1 || !hasEvent(room.StateAfter.Events, "m.room.topic", "") {
		t.Fatalf("incremental state_after: %+v", room.StateAfter)
	}
	// Without the parameter, state is as before (the topic is in the
	// timeline, so not in state).
	plain := getSync(t, alice, "timeout=0&since="+first.NextBatch)
	if r := plain.Rooms.Join[string(roomID)]; r.StateAfter != nil || len(r.State.Events) != 0 {
		t.Fatalf("plain sync: %+v", r)
	}
	status, _ := doRequest(t, "GET", alice.HomeserverURL.String()+"/_matrix/client/v3/sync?use_state_after=oui", alice.AccessToken, "")
	if status != http.StatusBadRequest {
		t.Fatalf("bad use_state_after: %d", status)
	}
}

// A knocked room is in rooms.knock with its stripped state.
func TestSyncKnockSection(t *testing.T) {
	srv := testserver.New(t)
	alice, carol := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "carol")
	ctx := ctxT(t)
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name: "Sur demande", RoomVersion: "12",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}},
	}))
	if _, err := carol.KnockRoom(ctx, room.RoomID.String(), &mautrix.ReqKnockRoom{Reason: "bonjour"}); err != nil {
		t.Fatal(err)
	}
	resp := getSync(t, carol, "timeout=0")
	k, ok := resp.Rooms.Knock[string(room.RoomID)]
	if !ok || len(k.KnockState.Events) == 0 {
		t.Fatalf("knock section: %+v", resp.Rooms.Knock)
	}
}
