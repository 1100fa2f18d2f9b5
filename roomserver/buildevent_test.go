package roomserver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

func TestBuildEvent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		for _, v := range []string{"1", "12"} {
			t.Run("v"+v, func(t *testing.T) { testBuildEvent(t, env, v) })
		}
	})
}

// makeMembership asks for the template of a membership event, as the
// federation does for make_join, make_leave and make_knock.
func (e *testEnv) makeMembership(roomID, userID, membership string, versions ...string) (*BuildEventResponse, error) {
	return BuildEvent.Call(e.ctx, e.bus, &BuildEventRequest{
		RoomID: roomID, Type: spec.MRoomMember, StateKey: &userID, Sender: userID,
		Content: mustJSON(map[string]string{"membership": membership}), SupportedVersions: versions,
	})
}

// completeTemplate does what the asking server does with a template: it
// fills in its own fields and signs.
func completeTemplate(t testing.TB, srv *otherServer, resp *BuildEventResponse) gomatrixserverlib.PDU {
	t.Helper()
	version := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(resp.RoomVersion))
	var proto gomatrixserverlib.ProtoEvent
	if err := json.Unmarshal(resp.Event, &proto); err != nil {
		t.Fatalf("template %s: %v", resp.Event, err)
	}
	proto.Version = version
	ev, err := version.NewEventBuilderFromProtoEvent(&proto).
		Build(time.Now(), spec.ServerName(srv.name), gomatrixserverlib.KeyID(srv.key.ID), srv.key.Private)
	if err != nil {
		t.Fatalf("complete template %s: %v", resp.Event, err)
	}
	return ev
}

// remoteMember changes the membership of a user of srv through a
// template, as a remote join, leave or knock goes.
func (e *testEnv) remoteMember(srv *otherServer, roomID, userID, membership string) string {
	e.t.Helper()
	resp, err := e.makeMembership(roomID, userID, membership)
	if err != nil {
		e.t.Fatalf("make %s for %s: %v", membership, userID, err)
	}
	ev := completeTemplate(e.t, srv, resp)
	e.mustInput(roomID, InputKindNew, ev, nil, InputAccepted)
	return ev.EventID()
}

func testBuildEvent(t *testing.T, env *testEnv, v string) {
	remote := newOtherServer(t, "remote.test")
	alice, rob := user("alice"), remote.user("rob")
	fr := NewFederationReader(env.db)
	public := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPublic})

	t.Run("errors", func(t *testing.T) {
		_, err := env.makeMembership("!unknown:"+testServer, rob, MembershipJoin)
		wantCode(t, err, "M_NOT_FOUND")
		_, err = env.makeMembership(public, rob, MembershipJoin, "5", "6")
		wantCode(t, err, "M_INCOMPATIBLE_ROOM_VERSION")
		if me, _ := mxerr.As(err); me.Extra["room_version"] != v {
			t.Fatalf("incompatible version error without the room's version: %+v", me)
		}
		_, err = env.makeMembership(public, rob, MembershipInvite)
		wantCode(t, err, "M_INVALID_PARAM")
		_, err = BuildEvent.Call(env.ctx, env.bus, &BuildEventRequest{RoomID: public, Type: spec.MRoomMember, StateKey: &alice,
			Sender: rob, Content: json.RawMessage(`{"membership":"join"}`)})
		wantCode(t, err, "M_INVALID_PARAM")

		private := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPrivate})
		_, err = env.makeMembership(private, rob, MembershipJoin)
		wantCode(t, err, "M_FORBIDDEN") // invite only
		_, err = env.makeMembership(private, rob, MembershipLeave)
		wantCode(t, err, "M_FORBIDDEN") // not in the room

		banned := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPublic})
		env.mustMember(alice, banned, rob, MembershipBan)
		_, err = env.makeMembership(banned, rob, MembershipJoin)
		wantCode(t, err, "M_FORBIDDEN")

		if v == "1" {
			_, err = env.makeMembership(public, rob, MembershipKnock)
			wantCode(t, err, "M_FORBIDDEN") // no knocking before version 7
		}

		// A room all local users left is not this server's to answer for.
		left := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPublic})
		env.mustMember(alice, left, alice, MembershipLeave)
		_, err = env.makeMembership(left, rob, MembershipJoin)
		wantCode(t, err, "M_NOT_FOUND")
	})

	t.Run("join template", func(t *testing.T) {
		before, _ := NewEventReader(env.db).MaxPos(env.ctx)
		resp, err := env.makeMembership(public, rob, MembershipJoin, "1", "12")
		if err != nil {
			t.Fatal(err)
		}
		if after, _ := NewEventReader(env.db).MaxPos(env.ctx); after != before {
			t.Fatalf("building a template stored something: %d -> %d", before, after)
		}
		if resp.RoomVersion != v {
			t.Fatalf("room version %q", resp.RoomVersion)
		}
		tmpl := decode(t, resp.Event)
		for _, k := range []string{"event_id", "hashes", "signatures"} {
			if _, ok := tmpl[k]; ok {
				t.Fatalf("template has %s: %s", k, resp.Event)
			}
		}
		if tmpl["type"] != spec.MRoomMember || tmpl["state_key"] != rob || tmpl["sender"] != rob || tmpl["room_id"] != public ||
			tmpl["origin_server_ts"] == nil {
			t.Fatalf("template %s", resp.Event)
		}
		if m := tmpl["content"].(map[string]any); m["membership"] != "join" || m["join_authorised_via_users_server"] != nil {
			t.Fatalf("template content %v", m)
		}
		var links dagLinks
		_ = json.Unmarshal(resp.Event, &links)
		ext, _ := fr.Extremities(env.ctx, public)
		sameSet(t, "prev_events", eventRefIDs(links.PrevEvents), ext)
		prev, _ := fr.Events(env.ctx, ext, false)
		if depth := tmpl["depth"].(float64); int64(depth) != prev[0].Depth+1 {
			t.Fatalf("depth %v after %d", depth, prev[0].Depth)
		}
		want := []string{}
		for _, k := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules"} {
			if k == "m.room.create" && v == "12" {
				continue // implied by the room ID
			}
			want = append(want, env.state(alice, public)[k+"|"].EventID)
		}
		sameSet(t, "auth_events", eventRefIDs(links.AuthEvents), want)

		// The joining server completes it and it passes as a join.
		join := completeTemplate(t, remote, resp)
		env.mustInput(public, InputKindNew, join, nil, InputAccepted)
		if got := env.state(alice, public)["m.room.member|"+rob].EventID; got != join.EventID() {
			t.Fatalf("rob's member event %s, want %s", got, join.EventID())
		}
		env.remoteMember(remote, public, rob, MembershipLeave)
		if m := decode(t, env.state(alice, public)["m.room.member|"+rob].Content)["membership"]; m != "leave" {
			t.Fatalf("rob's membership after make_leave: %v", m)
		}
	})

	if v == "12" {
		t.Run("knock", func(t *testing.T) {
			knockRoom := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v,
				InitialState: []StateEvent{{Type: "m.room.join_rules", Content: []byte(`{"join_rule":"knock"}`)}}})
			env.remoteMember(remote, knockRoom, rob, MembershipKnock)
			_, err := env.makeMembership(knockRoom, rob, MembershipJoin)
			wantCode(t, err, "M_FORBIDDEN")
		})
		t.Run("restricted", func(t *testing.T) { testRestrictedTemplate(t, env, remote) })
	}
}

// testRestrictedTemplate: a user of another server joined to the allowed
// room gets a template naming a local member who may invite.
func testRestrictedTemplate(t *testing.T, env *testEnv, remote *otherServer) {
	alice, bob, rob, carol := user("alice"), user("bob"), remote.user("rob"), remote.user("carol")
	space := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: "12", Preset: presetPublic})
	env.remoteMember(remote, space, rob, MembershipJoin)
	restricted := func(allow string) string {
		rule := `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"` + allow + `"}]}`
		return env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: "12", Invite: []string{bob},
			InitialState: []StateEvent{{Type: "m.room.join_rules", Content: []byte(rule)}}})
	}
	roomID := restricted(space)
	env.mustMember(bob, roomID, bob, MembershipJoin)

	resp, err := env.makeMembership(roomID, rob, MembershipJoin)
	if err != nil {
		t.Fatal(err)
	}
	if via := decode(t, resp.Event)["content"].(map[string]any)["join_authorised_via_users_server"]; via != alice {
		t.Fatalf("authorised via %v, want %s (who may invite)", via, alice)
	}
	join := completeTemplate(t, remote, resp)
	env.mustInput(roomID, InputKindNew, join, nil, InputAccepted)

	_, err = env.makeMembership(roomID, carol, MembershipJoin)
	wantCode(t, err, "M_FORBIDDEN") // not in the space
	_, err = env.makeMembership(restricted("!unknown:elsewhere.test"), carol, MembershipJoin)
	wantCode(t, err, "M_UNABLE_TO_AUTHORISE_JOIN")

}
