package roomserver

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

func TestFederationReader(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		// Version 1 lists prev and auth events as [ID, hashes] pairs;
		// version 12 leaves the create event out of auth_events.
		for _, v := range []string{"1", "12"} {
			t.Run("v"+v, func(t *testing.T) { testFederationReader(t, env, v) })
		}
	})
}

// fedRoom is a room with a fork, a redaction, an outlier, a rejected
// event and a gap in its DAG, and the IDs of its events.
type fedRoom struct {
	id                                  string
	create, bobJoin1, bobJoin2, robJoin string
	local1, remote1, merge, redaction   string
	outlier, rejected, gap, missingPrev string
	mergePos                            int64
	remote                              *otherServer
	alice, bob, rob                     string
}

func newFedRoom(t *testing.T, env *testEnv, version string) *fedRoom {
	fr := NewFederationReader(env.db)
	r := &fedRoom{remote: newOtherServer(t, "remote.test"), alice: user("alice"), bob: user("bob")}
	r.rob = r.remote.user("rob")
	r.id = env.createRoom(CreateRoomRequest{Sender: r.alice, RoomVersion: version, Preset: presetPublic, Topic: "first"})
	r.create = env.state(r.alice, r.id)["m.room.create|"].EventID
	join := func(name string) string {
		resp, err := Membership.Call(env.ctx, env.bus, &MembershipRequest{Sender: r.bob, RoomID: r.id, Membership: MembershipJoin, DisplayName: name})
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	r.bobJoin1, r.bobJoin2 = join("Bob"), join("Bobby")
	robJoin := env.buildRemote(r.remote, r.id, remoteEventSpec{sender: r.rob, evType: spec.MRoomMember, stateKey: &r.rob,
		content: map[string]string{"membership": "join"}})
	env.mustInput(r.id, InputKindNew, robJoin, nil, InputAccepted)
	r.robJoin = robJoin.EventID()

	// A fork: alice and rob both write on rob's join; alice's next
	// message merges the branches.
	r.local1 = env.mustSend(r.alice, r.id, "m.room.message", map[string]string{"body": "local"})
	remote1 := env.buildRemote(r.remote, r.id, remoteEventSpec{sender: r.rob, evType: "m.room.message",
		content: map[string]string{"body": "remote"}, prevs: []string{r.robJoin}})
	env.mustInput(r.id, InputKindNew, remote1, nil, InputAccepted)
	r.remote1 = remote1.EventID()
	ext, err := fr.Extremities(env.ctx, r.id)
	if err != nil {
		t.Fatal(err)
	}
	sameSet(t, "extremities of the fork", ext, []string{r.local1, r.remote1})
	r.merge = env.mustSend(r.alice, r.id, "m.room.message", map[string]string{"body": "merge"})
	r.mergePos, _ = NewEventReader(env.db).MaxPos(env.ctx)

	red, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: r.alice, RoomID: r.id, Type: "m.room.redaction",
		Redacts: r.local1, Content: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	r.redaction = red.EventID

	r.missingPrev = "$" + strings.Repeat("M", 43)
	if version == "1" {
		r.missingPrev = "$missing:remote.test"
	}
	outlier := env.buildRemote(r.remote, r.id, remoteEventSpec{sender: r.rob, evType: "m.room.message",
		content: map[string]string{"body": "fetched"}, prevs: []string{r.missingPrev}})
	env.mustInput(r.id, InputKindOutlier, outlier, nil, InputAccepted)
	r.outlier = outlier.EventID()
	// rob has power level 0: he may not name the room.
	rejected := env.buildRemote(r.remote, r.id, remoteEventSpec{sender: r.rob, evType: "m.room.name", stateKey: ptr(""),
		content: map[string]string{"name": "robbed"}})
	env.mustInput(r.id, InputKindNew, rejected, nil, InputRejected)
	r.rejected = rejected.EventID()

	// An event after a gap: its prev_event is unknown, its state given.
	state := []string{}
	for _, ev := range env.state(r.alice, r.id) {
		state = append(state, ev.EventID)
	}
	gap := env.buildRemote(r.remote, r.id, remoteEventSpec{sender: r.rob, evType: "m.room.message",
		content: map[string]string{"body": "after a gap"}, prevs: []string{r.missingPrev}})
	env.mustInput(r.id, InputKindNew, gap, state, InputAccepted)
	r.gap = gap.EventID()
	return r
}

func testFederationReader(t *testing.T, env *testEnv, version string) {
	ctx := env.ctx
	fr := NewFederationReader(env.db)
	r := newFedRoom(t, env, version)
	ids := func(pdus []StoredPDU) []string {
		out := make([]string, len(pdus))
		for i, p := range pdus {
			out[i] = p.EventID
		}
		return out
	}

	t.Run("RoomVersion", func(t *testing.T) {
		if v, ok, err := fr.RoomVersion(ctx, r.id); v != version || !ok || err != nil {
			t.Fatalf("version %q %v %v", v, ok, err)
		}
		if _, ok, err := fr.RoomVersion(ctx, "!unknown:test.local"); ok || err != nil {
			t.Fatalf("unknown room: %v %v", ok, err)
		}
	})

	t.Run("Events", func(t *testing.T) {
		want := []string{r.merge, r.local1, r.outlier, r.rejected, "$unknown:test.local", r.merge}
		got, err := fr.Events(ctx, want, false)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "events without rejected", ids(got), []string{r.merge, r.local1, r.outlier})
		for _, p := range got {
			if p.RoomID != r.id || p.RoomVersion != version || p.Rejected || p.Outlier != (p.EventID == r.outlier) {
				t.Fatalf("event %s: %+v", p.EventID, p)
			}
			content := decode(t, p.JSON)["content"].(map[string]any)
			if redacted := len(content) == 0; redacted != (p.EventID == r.local1) {
				t.Fatalf("event %s served with content %v", p.EventID, content)
			}
			if _, err := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version)).NewEventFromTrustedJSON(p.JSON, false); err != nil {
				t.Fatalf("event %s does not parse: %v", p.EventID, err)
			}
		}
		all, err := fr.Events(ctx, want, true)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "events with rejected", ids(all), []string{r.merge, r.local1, r.outlier, r.rejected})
	})

	t.Run("StateBefore", func(t *testing.T) {
		state, chain, err := fr.StateBefore(ctx, r.id, r.remote1)
		if err != nil {
			t.Fatal(err)
		}
		current := []string{}
		for _, ev := range env.state(r.alice, r.id) {
			current = append(current, ev.EventID)
		}
		// Nothing changed the state since rob's join.
		sameSet(t, "state before the remote message", state, current)
		inState := map[string]bool{}
		for _, id := range state {
			inState[id] = true
		}
		inChain := map[string]bool{}
		for _, id := range chain {
			if inState[id] {
				t.Fatalf("%s is both in the state and the auth chain", id)
			}
			inChain[id] = true
		}
		// bob's first join authorised his second, which replaced it.
		if !inChain[r.bobJoin1] || len(chain) != 1 {
			t.Fatalf("auth chain %v, want only bob's first join %s", chain, r.bobJoin1)
		}
		for _, id := range []string{r.outlier, r.rejected} {
			_, _, err := fr.StateBefore(ctx, r.id, id)
			wantCode(t, err, "M_NOT_FOUND")
		}
		_, _, err = fr.StateBefore(ctx, "!other:test.local", r.remote1)
		wantCode(t, err, "M_NOT_FOUND")
		if state, chain, err := fr.StateBefore(ctx, r.id, r.create); len(state) != 0 || len(chain) != 0 || err != nil {
			t.Fatalf("state before the create event: %v %v %v", state, chain, err)
		}
	})

	t.Run("AuthChain", func(t *testing.T) {
		chain, err := fr.AuthChain(ctx, []string{r.remote1})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, id := range ids(chain) {
			if got[id] {
				t.Fatalf("%s twice in the auth chain", id)
			}
			got[id] = true
		}
		// Room version 12 does not list the create event: it is implied.
		for _, id := range []string{r.create, r.robJoin} {
			if !got[id] {
				t.Fatalf("auth chain %v lacks %s", ids(chain), id)
			}
		}
		if got[r.remote1] || got[r.bobJoin1] {
			t.Fatalf("auth chain %v has events outside it", ids(chain))
		}
		// An event is in the chain when another's auth event.
		both, err := fr.AuthChain(ctx, []string{r.remote1, r.robJoin})
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "auth chain of two events", ids(both), ids(chain))
	})

	t.Run("Backfill", func(t *testing.T) {
		three, err := fr.Backfill(ctx, r.id, []string{r.merge}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(three) != 3 || three[0].EventID != r.merge {
			t.Fatalf("backfill of 3 from the merge: %v", ids(three))
		}
		sameSet(t, "the two branches", ids(three[1:]), []string{r.local1, r.remote1})

		all, err := fr.Backfill(ctx, r.id, []string{r.merge, "$unknown:test.local"}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		timeline, err := NewEventReader(env.db).Events(ctx, r.id, 0, r.mergePos, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{}
		for _, ev := range timeline {
			want = append(want, ev.Event.EventID)
		}
		sameSet(t, "backfill of everything before the merge", ids(all), want)
		for i := 1; i < len(all); i++ {
			if all[i].Depth > all[i-1].Depth {
				t.Fatalf("backfill not by decreasing depth: %v", ids(all))
			}
		}
		if all[len(all)-1].EventID != r.create {
			t.Fatalf("backfill ends at %s, not the create event", all[len(all)-1].EventID)
		}
		if got, err := fr.Backfill(ctx, "!unknown:test.local", []string{r.merge}, 10); got != nil || err != nil {
			t.Fatalf("backfill of an unknown room: %v %v", got, err)
		}
	})

	t.Run("MissingEvents", func(t *testing.T) {
		got, err := fr.MissingEvents(ctx, r.id, []string{r.robJoin}, []string{r.merge}, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "events between rob's join and the merge", ids(got), []string{r.local1, r.remote1})

		got, err = fr.MissingEvents(ctx, r.id, []string{r.bobJoin2}, []string{r.merge}, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].EventID != r.robJoin {
			t.Fatalf("missing events after bob's second join, oldest first: %v", ids(got))
		}
		got, err = fr.MissingEvents(ctx, r.id, nil, []string{r.merge}, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "the 2 latest missing events", ids(got), []string{r.local1, r.remote1})

		join, _ := fr.Events(ctx, []string{r.robJoin}, false)
		got, err = fr.MissingEvents(ctx, r.id, nil, []string{r.merge}, 100, join[0].Depth)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "missing events from min_depth", ids(got), []string{r.robJoin, r.local1, r.remote1})
	})

	t.Run("CurrentState", func(t *testing.T) {
		topic, err := fr.CurrentState(ctx, r.id, "m.room.topic", "")
		if err != nil || topic == nil || topic.EventID != env.state(r.alice, r.id)["m.room.topic|"].EventID {
			t.Fatalf("topic %+v %v", topic, err)
		}
		if name, err := fr.CurrentState(ctx, r.id, "m.room.name", ""); name != nil || err != nil {
			t.Fatalf("the rejected name is in the current state: %+v %v", name, err)
		}
		if ev, err := fr.CurrentState(ctx, "!unknown:test.local", "m.room.topic", ""); ev != nil || err != nil {
			t.Fatalf("unknown room: %+v %v", ev, err)
		}
	})

	t.Run("servers", func(t *testing.T) {
		servers, err := fr.JoinedServers(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "joined servers", servers, []string{"remote.test", testServer})
		for server, want := range map[string]bool{"remote.test": true, testServer: true, "mote.test": false, "elsewhere.test": false, "remote_test": false} {
			if was, err := fr.ServerWasInRoom(ctx, r.id, server); was != want || err != nil {
				t.Fatalf("ServerWasInRoom(%s) = %v %v", server, was, err)
			}
		}
		// A server whose users all left was in the room all the same.
		other := env.createRoom(CreateRoomRequest{Sender: r.alice, RoomVersion: version, Preset: presetPublic})
		env.remoteMember(r.remote, other, r.rob, MembershipJoin)
		env.remoteMember(r.remote, other, r.rob, MembershipLeave)
		if servers, err := fr.JoinedServers(ctx, other); err != nil || !slices.Equal(servers, []string{testServer}) {
			t.Fatalf("joined servers after rob left: %v %v", servers, err)
		}
		if was, err := fr.ServerWasInRoom(ctx, other, "remote.test"); !was || err != nil {
			t.Fatalf("ServerWasInRoom after leaving = %v %v", was, err)
		}
	})

	t.Run("servers joined before an event", func(t *testing.T) {
		room := env.createRoom(CreateRoomRequest{Sender: r.alice, RoomVersion: version, Preset: presetPublic})
		posOf := func(eventID string) int64 {
			pos, _, _, _ := env.flags(eventID)
			return pos
		}
		before := env.mustSend(r.alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "avant"})
		join := env.remoteMember(r.remote, room, r.rob, MembershipJoin)
		profile := env.remoteMember(r.remote, room, r.rob, MembershipJoin) // join to join: still in since the first
		after := env.mustSend(r.alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "après"})
		both := []string{"remote.test", testServer}
		for _, c := range []struct {
			at   int64
			want []string
		}{
			{posOf(before), []string{testServer}},
			{posOf(join), []string{testServer}},
			{posOf(profile), both},
			{posOf(after), both},
		} {
			got, err := fr.JoinedServersBefore(ctx, room, c.at)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("JoinedServersBefore(%d) = %v %v, want %v", c.at, got, err, c.want)
			}
		}
		// Out and back in: in the room again from the new join on.
		env.remoteMember(r.remote, room, r.rob, MembershipLeave)
		rejoin := env.remoteMember(r.remote, room, r.rob, MembershipJoin)
		if got, err := fr.JoinedServersBefore(ctx, room, posOf(rejoin)); err != nil || !slices.Equal(got, []string{testServer}) {
			t.Fatalf("at the second join: %v %v", got, err)
		}
		if got, err := fr.JoinedServersBefore(ctx, room, posOf(rejoin)+1); err != nil || !slices.Equal(got, both) {
			t.Fatalf("after the second join: %v %v", got, err)
		}
	})

	t.Run("extremities", func(t *testing.T) {
		ext, err := fr.Extremities(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "extremities", ext, []string{r.redaction, r.gap})
		back, err := fr.BackwardExtremities(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		sameSet(t, "backward extremities", back, []string{r.gap})
		if ext, err := fr.Extremities(ctx, "!unknown:test.local"); ext != nil || err != nil {
			t.Fatalf("unknown room: %v %v", ext, err)
		}
	})
}
