package tests

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// device_lists in /sync and /keys/changes: a key upload of a user sharing
// a room shows in changed; a user who no longer shares any room, in left;
// a user sharing no room never shows.
func TestE2EEDeviceLists(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	carol := srv.RegisterUser(t, "carol")
	ctx := ctxT(t)
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})).RoomID
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))
	start := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 0, "", "", false, ""))

	keys, _ := signedDeviceKeys(t, bob.UserID.String(), bob.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/upload", bob.AccessToken, `{"device_keys":`+keys+`}`), 200, "")
	ckeys, _ := signedDeviceKeys(t, carol.UserID.String(), carol.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/upload", carol.AccessToken, `{"device_keys":`+ckeys+`}`), 200, "")

	since := start.NextBatch
	deadline := time.Now().Add(10 * time.Second)
	var changed []id.UserID
	for !slices.Contains(changed, bob.UserID) && time.Now().Before(deadline) {
		r := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 2000, since, "", false, ""))
		changed = append(changed, r.DeviceLists.Changed...)
		since = r.NextBatch
	}
	if !slices.Contains(changed, bob.UserID) || slices.Contains(changed, carol.UserID) {
		t.Fatalf("changed = %v, want bob and not carol", changed)
	}
	// GET, as the spec has it (mautrix's GetKeyChanges POSTs).
	kc := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/keys/changes?from="+start.NextBatch+"&to="+since, alice.AccessToken, "")
	kcChanged, _ := kc.body["changed"].([]any)
	if !slices.Contains(kcChanged, any(bob.UserID.String())) || slices.Contains(kcChanged, any(carol.UserID.String())) {
		t.Fatalf("/keys/changes = %d %v", kc.status, kc.body)
	}

	must[*mautrix.RespLeaveRoom](t)(bob.LeaveRoom(ctx, room))
	var left []id.UserID
	deadline = time.Now().Add(10 * time.Second)
	for !slices.Contains(left, bob.UserID) && time.Now().Before(deadline) {
		r := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 2000, since, "", false, ""))
		left = append(left, r.DeviceLists.Left...)
		since = r.NextBatch
	}
	if !slices.Contains(left, bob.UserID) {
		t.Fatalf("left = %v, want bob", left)
	}
}
