package federation_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// inviteV1 builds an invite of bob (B) for invitee in a room of version
// 1, signed by B, with stripped state in unsigned.invite_room_state.
func inviteV1(t *testing.T, b *testserver.Server, roomID, invitee string, strippedState []any) gomatrixserverlib.PDU {
	t.Helper()
	proto := gomatrixserverlib.ProtoEvent{
		SenderID: "@bob:" + nameB, RoomID: roomID, Type: "m.room.member", StateKey: &invitee, Depth: 7,
	}
	if err := proto.SetContent(map[string]string{"membership": "invite"}); err != nil {
		t.Fatal(err)
	}
	if err := proto.SetUnsigned(map[string]any{"invite_room_state": strippedState}); err != nil {
		t.Fatal(err)
	}
	ev, err := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion("1")).NewEventBuilderFromProtoEvent(&proto).
		Build(time.Now(), nameB, gomatrixserverlib.KeyID(b.Base.Key.ID), b.Base.Key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func strippedCreate(version string) map[string]any {
	return map[string]any{"type": "m.room.create", "state_key": "", "sender": "@bob:" + nameB,
		"content": map[string]string{"room_version": version}}
}

// Invite v1: the body is the event, the answer [200, {"event": ...}]
// with A's signature added and the rest untouched; the invitee sees the
// invite. Rooms of versions past 2 are refused, as are unknown users.
func TestInviteV1(t *testing.T) {
	servers := testserver.NewFederation(t, nameA, nameB)
	a, b := servers[0], servers[1]
	ctx := ctxT(t)
	alice := a.RegisterUser(t, "alice")
	put := func(ev gomatrixserverlib.PDU, out any) error {
		path := "/_matrix/federation/v1/invite/" + url.PathEscape(ev.RoomID().String()) + "/" + url.PathEscape(ev.EventID())
		return b.Server.Federation.DoSigned(ctx, "PUT", nameA, path, json.RawMessage(ev.JSON()), out)
	}

	roomID := "!vieux:" + nameB
	ev := inviteV1(t, b, roomID, alice.UserID.String(), []any{
		strippedCreate("1"), map[string]any{"type": "m.room.name", "state_key": "", "sender": "@bob:" + nameB, "content": map[string]string{"name": "Salon v1"}},
	})
	var answer []json.RawMessage
	if err := put(ev, &answer); err != nil {
		t.Fatalf("invite v1: %v", err)
	}
	var signed struct {
		Event struct {
			EventID    string                       `json:"event_id"`
			Signatures map[string]map[string]string `json:"signatures"`
			Unsigned   struct {
				InviteRoomState []json.RawMessage `json:"invite_room_state"`
			} `json:"unsigned"`
		} `json:"event"`
	}
	if len(answer) != 2 || string(answer[0]) != "200" || json.Unmarshal(answer[1], &signed) != nil {
		t.Fatalf("answer %s", answer)
	}
	got := signed.Event
	if got.EventID != ev.EventID() || len(got.Signatures[nameA]) != 1 || len(got.Signatures[nameB]) != 1 || len(got.Unsigned.InviteRoomState) != 2 {
		t.Fatalf("signed event %+v", got)
	}

	// Alice sees the invite, with the room's name.
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	since := ""
	for {
		resp, err := alice.SyncRequest(waitCtx, 1000, since, "", false, "")
		if err != nil {
			t.Fatalf("alice waits for the invite: %v", err)
		}
		since = resp.NextBatch
		if inv, ok := resp.Rooms.Invite[id.RoomID(roomID)]; ok {
			if len(inv.State.Events) == 0 {
				t.Fatal("the invite has no stripped state")
			}
			break
		}
	}

	// Versions past 2: named by the stripped create event, or the
	// version of a room A knows.
	err := put(inviteV1(t, b, "!neuf:"+nameB, alice.UserID.String(), []any{strippedCreate("10")}), nil)
	wantErr(t, "version 10 in the stripped state", err, 400, "M_INCOMPATIBLE_ROOM_VERSION")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "10"})
	if err != nil {
		t.Fatal(err)
	}
	err = put(inviteV1(t, b, created.RoomID.String(), alice.UserID.String(), nil), nil)
	wantErr(t, "a room of version 10 on A", err, 400, "M_INCOMPATIBLE_ROOM_VERSION")
	// A user A does not have.
	err = put(inviteV1(t, b, "!autre:"+nameB, "@nobody:"+nameA, nil), nil)
	wantErr(t, "unknown invitee", err, 403, "M_FORBIDDEN")
}
