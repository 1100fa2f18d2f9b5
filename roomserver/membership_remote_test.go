package roomserver

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// fakeFederation answers the fedapi endpoints on a test bus as the
// federation component would, recording what the roomserver asks.
type fakeFederation struct {
	remote *otherServer // countersigns invites

	mu        sync.Mutex
	err       error // every Perform* fails with it when set
	joins     []fedapi.PerformJoinRequest
	leaves    []fedapi.PerformLeaveRequest
	knocks    []fedapi.PerformKnockRequest
	invites   []fedapi.PerformInviteRequest
	directory map[string]fedapi.QueryDirectoryResponse
}

func serveFakeFederation(t *testing.T, env *testEnv, remote *otherServer) *fakeFederation {
	f := &fakeFederation{remote: remote, directory: map[string]fedapi.QueryDirectoryResponse{}}
	for _, err := range []error{
		fedapi.PerformJoin.Serve(env.bus, func(_ context.Context, req *fedapi.PerformJoinRequest) (*fedapi.PerformJoinResponse, error) {
			return record(f, &f.joins, req, &fedapi.PerformJoinResponse{RoomID: req.RoomID, EventID: "$join"})
		}),
		fedapi.PerformLeave.Serve(env.bus, func(_ context.Context, req *fedapi.PerformLeaveRequest) (*fedapi.PerformLeaveResponse, error) {
			return record(f, &f.leaves, req, &fedapi.PerformLeaveResponse{EventID: "$leave"})
		}),
		fedapi.PerformKnock.Serve(env.bus, func(_ context.Context, req *fedapi.PerformKnockRequest) (*fedapi.PerformKnockResponse, error) {
			return record(f, &f.knocks, req, &fedapi.PerformKnockResponse{RoomID: req.RoomID, EventID: "$knock"})
		}),
		fedapi.PerformInvite.Serve(env.bus, f.invite),
		fedapi.QueryDirectory.Serve(env.bus, func(_ context.Context, req *fedapi.QueryDirectoryRequest) (*fedapi.QueryDirectoryResponse, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			resp, ok := f.directory[req.Alias]
			if !ok {
				return nil, mxerr.NotFound("room alias %s not found", req.Alias)
			}
			return &resp, nil
		}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func record[Req, Resp any](f *fakeFederation, log *[]Req, req *Req, resp *Resp) (*Resp, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*log = append(*log, *req)
	if f.err != nil {
		return nil, f.err
	}
	return resp, nil
}

// invite countersigns the invite as the invitee's server does.
func (f *fakeFederation) invite(_ context.Context, req *fedapi.PerformInviteRequest) (*fedapi.PerformInviteResponse, error) {
	if _, err := record(f, &f.invites, req, &struct{}{}); err != nil {
		return nil, err
	}
	version, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return nil, mxerr.New(400, "M_INCOMPATIBLE_ROOM_VERSION", "%v", err)
	}
	ev, err := version.NewEventFromUntrustedJSON(req.Event)
	if err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	signed := ev.Sign(f.remote.name, gomatrixserverlib.KeyID(f.remote.key.ID), f.remote.key.Private)
	return &fedapi.PerformInviteResponse{Event: signed.JSON()}, nil
}

func (f *fakeFederation) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// last returns the last request of a log, failing when there is none.
func last[Req any](t *testing.T, f *fakeFederation, log *[]Req) Req {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(*log) == 0 {
		t.Fatal("the federation was not asked")
	}
	return (*log)[len(*log)-1]
}

func count[Req any](f *fakeFederation, log *[]Req) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(*log)
}

func TestRemoteMembership(t *testing.T) {
	forEachBackend(t, testRemoteMembership)
}

func testRemoteMembership(t *testing.T, env *testEnv) {
	ctx := env.ctx
	alice, bob := user("alice"), user("bob")
	remote := newOtherServer(t, "remote.test")
	v12Room := "!" + strings.Repeat("R", 43)

	t.Run("federation disabled", func(t *testing.T) {
		for _, roomID := range []string{"!room:remote.test", "#hall:remote.test"} {
			_, err := env.member(alice, roomID, alice, MembershipJoin)
			wantCode(t, err, "M_FORBIDDEN")
			if !strings.Contains(err.Error(), "federation is disabled") {
				t.Fatalf("join %s: %v", roomID, err)
			}
		}
		_, err := ResolveAlias.Call(ctx, env.bus, &ResolveAliasRequest{Alias: "#hall:remote.test"})
		wantCode(t, err, "M_FORBIDDEN")
	})

	fed := serveFakeFederation(t, env, remote)

	t.Run("join", func(t *testing.T) {
		resp, err := Membership.Call(ctx, env.bus, &MembershipRequest{Sender: alice, RoomID: "!room:remote.test", Membership: MembershipJoin,
			Via: []string{"via.test", testServer, "remote.test"}, DisplayName: "Alice", Reason: "hello"})
		if err != nil || resp.RoomID != "!room:remote.test" || resp.EventID != "$join" {
			t.Fatalf("remote join: %+v %v", resp, err)
		}
		req := last(t, fed, &fed.joins)
		if !slices.Equal(req.ServerNames, []string{"via.test", "remote.test"}) || req.UserID != alice {
			t.Fatalf("join asked %+v", req)
		}
		if c := decode(t, req.Content); c["membership"] != "join" || c["displayname"] != "Alice" || c["reason"] != "hello" {
			t.Fatalf("join content %s", req.Content)
		}

		// Room version 12's room IDs name no server: only via is left.
		n := count(fed, &fed.joins)
		_, err = env.member(alice, v12Room, alice, MembershipJoin)
		wantCode(t, err, "M_NOT_FOUND")
		if count(fed, &fed.joins) != n {
			t.Fatal("the federation was asked with no server to ask")
		}
		if _, err := Membership.Call(ctx, env.bus, &MembershipRequest{Sender: alice, RoomID: v12Room, Membership: MembershipJoin,
			Via: []string{"via.test"}}); err != nil {
			t.Fatal(err)
		}
		if req := last(t, fed, &fed.joins); !slices.Equal(req.ServerNames, []string{"via.test"}) {
			t.Fatalf("join of a v12 room asked %v", req.ServerNames)
		}

		// Their refusal is the client's answer.
		fed.fail(mxerr.Forbidden("You are not invited to this room"))
		_, err = env.member(alice, "!room:remote.test", alice, MembershipJoin)
		wantCode(t, err, "M_FORBIDDEN")
		if !strings.Contains(err.Error(), "not invited") {
			t.Fatalf("refusal: %v", err)
		}
		fed.fail(nil)
		_, err = env.member(alice, "!room:remote.test", bob, MembershipJoin)
		wantCode(t, err, "M_FORBIDDEN") // on behalf of another
	})

	t.Run("remote alias", func(t *testing.T) {
		fed.directory["#hall:other.test"] = fedapi.QueryDirectoryResponse{RoomID: "!hall:other.test", Servers: []string{"dir.test", "other.test"}}
		resolved, err := ResolveAlias.Call(ctx, env.bus, &ResolveAliasRequest{Alias: "#hall:other.test"})
		if err != nil || resolved.RoomID != "!hall:other.test" || !slices.Equal(resolved.Servers, []string{"dir.test", "other.test"}) {
			t.Fatalf("resolve remote alias: %+v %v", resolved, err)
		}
		_, err = ResolveAlias.Call(ctx, env.bus, &ResolveAliasRequest{Alias: "#nowhere:other.test"})
		wantCode(t, err, "M_NOT_FOUND")

		resp, err := Membership.Call(ctx, env.bus, &MembershipRequest{Sender: alice, RoomID: "#hall:other.test", Membership: MembershipJoin,
			Via: []string{"via.test"}})
		if err != nil || resp.RoomID != "!hall:other.test" {
			t.Fatalf("join by remote alias: %+v %v", resp, err)
		}
		if req := last(t, fed, &fed.joins); req.RoomID != "!hall:other.test" || !slices.Equal(req.ServerNames, []string{"via.test", "dir.test", "other.test"}) {
			t.Fatalf("join by alias asked %+v", req)
		}
	})

	t.Run("knock and leave", func(t *testing.T) {
		if _, err := Membership.Call(ctx, env.bus, &MembershipRequest{Sender: alice, RoomID: "!knock:remote.test", Membership: MembershipKnock,
			Reason: "let me in"}); err != nil {
			t.Fatal(err)
		}
		if req := last(t, fed, &fed.knocks); req.UserID != alice || req.Reason != "let me in" || !slices.Equal(req.ServerNames, []string{"remote.test"}) {
			t.Fatalf("knock asked %+v", req)
		}
		// Leaving needs an invite or a knock to take back.
		_, err := env.member(alice, "!gone:remote.test", alice, MembershipLeave)
		wantCode(t, err, "M_NOT_FOUND")
		_, err = env.member(alice, "!gone:remote.test", bob, MembershipInvite)
		wantCode(t, err, "M_NOT_FOUND")
		if count(fed, &fed.leaves) != 0 || count(fed, &fed.invites) != 0 {
			t.Fatal("the federation was asked for a room nobody here is in")
		}
	})

	t.Run("room this server left", func(t *testing.T) {
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: "10", Preset: presetPublic})
		env.remoteMember(remote, roomID, remote.user("rob"), MembershipJoin)
		left := env.mustMember(alice, roomID, alice, MembershipLeave)
		leaves := count(fed, &fed.leaves)
		if again := env.mustMember(alice, roomID, alice, MembershipLeave); again != left || count(fed, &fed.leaves) != leaves {
			t.Fatalf("leaving again gave %s, want %s without the federation", again, left)
		}
		_, err := env.member(alice, roomID, bob, MembershipInvite)
		wantCode(t, err, "M_FORBIDDEN")
		// Only the servers still in it can let alice back in.
		if _, err := env.member(alice, roomID, alice, MembershipJoin); err != nil {
			t.Fatal(err)
		}
		if req := last(t, fed, &fed.joins); req.RoomID != roomID || !slices.Equal(req.ServerNames, []string{"remote.test"}) {
			t.Fatalf("rejoin asked %+v", req)
		}
	})
	t.Run("invited from another server", func(t *testing.T) { testRemoteInvite(t, env, fed, remote) })
	t.Run("inviting a user of another server", func(t *testing.T) { testInviteRemoteUser(t, env, fed, remote) })
}

// testRemoteInvite: an invite from another server shows in /sync with the
// state it came with; joining and rejecting go through the inviter's
// server.
func testRemoteInvite(t *testing.T, env *testEnv, fed *fakeFederation, remote *otherServer) {
	ctx := env.ctx
	alice, rob := user("alice"), remote.user("rob")
	roomID := "!invited:origin.test" // created on another server than the inviter's
	version := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10)
	proto := gomatrixserverlib.ProtoEvent{SenderID: rob, RoomID: roomID, Type: spec.MRoomMember, StateKey: &alice,
		PrevEvents: []string{"$" + strings.Repeat("P", 43)}, AuthEvents: []string{"$" + strings.Repeat("A", 43)}, Depth: 7,
		Content: spec.RawJSON(mustJSON(map[string]string{"membership": "invite"})), Version: version}
	invite, err := version.NewEventBuilderFromProtoEvent(&proto).
		Build(time.Now(), spec.ServerName(remote.name), gomatrixserverlib.KeyID(remote.key.ID), remote.key.Private)
	if err != nil {
		t.Fatal(err)
	}
	roomState := []json.RawMessage{
		mustJSON(map[string]any{"type": "m.room.create", "state_key": "", "sender": rob, "content": map[string]string{"room_version": "10"},
			"origin_server_ts": 1, "event_id": "$create"}),
		mustJSON(map[string]any{"type": "m.room.name", "state_key": "", "sender": rob, "content": map[string]string{"name": "Far away"}}),
	}
	if _, err := StoreInvite.Call(ctx, env.bus, &StoreInviteRequest{RoomVersion: "10", Event: invite.JSON(), InviteRoomState: roomState}); err != nil {
		t.Fatal(err)
	}

	stripped, err := NewEventReader(env.db).InviteState(ctx, roomID, alice)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, raw := range stripped {
		ev := decode(t, raw)
		for k := range ev {
			if k != "type" && k != "state_key" && k != "sender" && k != "content" {
				t.Fatalf("stripped state with %s: %s", k, raw)
			}
		}
		got[ev["type"].(string)] = ev
	}
	if len(got) != 3 || got["m.room.name"]["content"].(map[string]any)["name"] != "Far away" || got["m.room.create"] == nil {
		t.Fatalf("invite state %v", got)
	}
	if m := got["m.room.member"]; m["sender"] != rob || m["state_key"] != alice || m["content"].(map[string]any)["membership"] != "invite" {
		t.Fatalf("invite in the invite state: %v", m)
	}

	if _, err := env.member(alice, roomID, alice, MembershipJoin); err != nil {
		t.Fatal(err)
	}
	if req := last(t, fed, &fed.joins); req.RoomID != roomID || !slices.Equal(req.ServerNames, []string{"origin.test", "remote.test"}) {
		t.Fatalf("join of the invite asked %+v", req)
	}
	if _, err := env.member(alice, roomID, alice, MembershipLeave); err != nil {
		t.Fatal(err)
	}
	if req := last(t, fed, &fed.leaves); req.RoomID != roomID || req.UserID != alice || !slices.Equal(req.ServerNames, []string{"origin.test", "remote.test"}) {
		t.Fatalf("rejection asked %+v", req)
	}
}

// testInviteRemoteUser: the invite is built here, countersigned by the
// invitee's server and stored with both signatures.
func testInviteRemoteUser(t *testing.T, env *testEnv, fed *fakeFederation, remote *otherServer) {
	alice, bob, rob, ron := user("alice"), user("bob"), remote.user("rob"), remote.user("ron")
	for _, v := range []string{"1", "12"} {
		t.Run("v"+v, func(t *testing.T) {
			roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPrivate, Name: "Ministry"})
			resp, err := env.member(alice, roomID, rob, MembershipInvite)
			if err != nil {
				t.Fatal(err)
			}
			req := last(t, fed, &fed.invites)
			if req.RoomVersion != v {
				t.Fatalf("invite of version %q", req.RoomVersion)
			}
			if ev := decode(t, req.Event); ev["state_key"] != rob || ev["sender"] != alice {
				t.Fatalf("invite sent %s", req.Event)
			}
			types := []string{}
			for _, raw := range req.InviteRoomState {
				ev := decode(t, raw)
				if ev["signatures"] == nil {
					t.Fatalf("invite room state entries must be whole events: %s", raw)
				}
				types = append(types, ev["type"].(string)+"|"+ev["state_key"].(string))
			}
			for _, want := range []string{"m.room.create|", "m.room.join_rules|", "m.room.name|", "m.room.member|" + alice} {
				if !slices.Contains(types, want) {
					t.Fatalf("invite room state %v lacks %s", types, want)
				}
			}
			member := env.state(alice, roomID)["m.room.member|"+rob]
			if member.EventID != resp || decode(t, member.Content)["membership"] != "invite" {
				t.Fatalf("rob's member event %+v, want the invite %s", member, resp)
			}
			sigs := env.rawEvent(resp)["signatures"].(map[string]any)
			if sigs[testServer] == nil || sigs["remote.test"] == nil {
				t.Fatalf("stored invite signed by %v", sigs)
			}

			fed.fail(mxerr.Forbidden("no thanks"))
			_, err = env.member(alice, roomID, ron, MembershipInvite)
			fed.fail(nil)
			wantCode(t, err, "M_FORBIDDEN")
			if _, ok := env.state(alice, roomID)["m.room.member|"+ron]; ok {
				t.Fatal("a refused invite was stored")
			}
			n := count(fed, &fed.invites)
			_, err = env.member(bob, roomID, ron, MembershipInvite)
			wantCode(t, err, "M_FORBIDDEN") // bob is not in the room
			if count(fed, &fed.invites) != n {
				t.Fatal("the federation was asked for an invite the room refuses")
			}

			// Invitees of /createRoom on other servers are invited the same way.
			dm := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: "trusted_private_chat", IsDirect: true,
				Invite: []string{rob, bob}})
			if req := last(t, fed, &fed.invites); decode(t, req.Event)["room_id"] != dm {
				t.Fatalf("invite to the new room sent %s", req.Event)
			}
			state := env.state(alice, dm)
			for _, u := range []string{rob, bob} {
				if c := decode(t, state["m.room.member|"+u].Content); c["membership"] != "invite" || c["is_direct"] != true {
					t.Fatalf("%s's member event in the new room: %v", u, c)
				}
			}
			if sigs := env.rawEvent(state["m.room.member|"+rob].EventID)["signatures"].(map[string]any); sigs["remote.test"] == nil {
				t.Fatalf("rob's invite to the new room signed by %v", sigs)
			}
		})
	}
}
