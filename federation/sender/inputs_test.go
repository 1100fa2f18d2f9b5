package sender

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/syncapi"
	"github.com/chappe-matrix/chappe/userapi"
)

var (
	alice = "@alice:" + us
	bob   = "@bob:" + remote
)

func (e *env) publishRoom(ev roomserver.OutputEvent) {
	e.t.Helper()
	if ev.Event == nil {
		ev.Event = pdu(ev.RoomID, ev.EventID)
	}
	if _, err := roomserver.Output.Publish(e.ctx, e.bus, &ev); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) publishSync(msg syncapi.OutputMessage) {
	e.t.Helper()
	if _, err := syncapi.Output.Publish(e.ctx, e.bus, &msg); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) publishKeyChange(userID string) {
	e.t.Helper()
	if _, err := userapi.KeyChanges.Publish(e.ctx, e.bus, &userapi.KeyChange{UserID: userID}); err != nil {
		e.t.Fatal(err)
	}
}

// serveRoomsOfUser answers roomserver.QueryRoomsOfUser with the rooms
// given per user.
func (e *env) serveRoomsOfUser(rooms map[string][]string) {
	e.t.Helper()
	err := roomserver.QueryRoomsOfUser.Serve(e.bus, func(_ context.Context, req *roomserver.QueryRoomsOfUserRequest) (*roomserver.QueryRoomsOfUserResponse, error) {
		resp := &roomserver.QueryRoomsOfUserResponse{}
		for _, r := range rooms[req.UserID] {
			resp.Rooms = append(resp.Rooms, roomserver.MembershipChange{RoomID: r, Membership: roomserver.MembershipJoin})
		}
		return resp, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func member(room, id, sender, target, membership string) roomserver.OutputEvent {
	return roomserver.OutputEvent{RoomID: room, EventID: id, Type: "m.room.member", Sender: sender, StateKey: &target, Membership: membership}
}

func TestRoomEventsOfLocalUsersGoToTheRoomsServers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.withBus()
		e.rooms.set(roomA, us, remote)
		e.rooms.set(roomB, us)
		carol, dave := "@carol:"+third, "@dave:"+third
		if err := roomserver.Output.Ensure(e.ctx, e.bus); err != nil {
			t.Fatal(err)
		}
		e.publishRoom(roomserver.OutputEvent{RoomID: roomA, EventID: "$history", Type: "m.room.message", Sender: alice})
		e.start()
		e.publishRoom(roomserver.OutputEvent{RoomID: roomA, EventID: "$m1", Type: "m.room.message", Sender: alice})
		e.publishRoom(roomserver.OutputEvent{RoomID: roomA, EventID: "$theirs", Type: "m.room.message", Sender: bob})
		e.publishRoom(member(roomA, "$kick", alice, carol, roomserver.MembershipLeave))
		e.publishRoom(member(roomA, "$invite", alice, dave, roomserver.MembershipInvite))
		e.publishRoom(roomserver.OutputEvent{RoomID: roomB, EventID: "$alone", Type: "m.room.message", Sender: alice})
		e.publishRoom(roomserver.OutputEvent{RoomID: roomA, EventID: "$m2", Type: "m.room.message", Sender: alice})
		eventually(t, "$m2 delivered", func() bool { return slices.Contains(e.tr.pduIDs(remote), "$m2") })
		if got := e.tr.pduIDs(remote); !slices.Equal(got, []string{"$m1", "$kick", "$invite", "$m2"}) {
			t.Errorf("%s got %v", remote, got)
		}
		// The kicked user's server hears of the kick; the invitee's got its
		// invite through the invite API.
		eventually(t, "the kick at the kicked user's server", func() bool { return len(e.tr.pduIDs(third)) == 1 })
		if got := e.tr.pduIDs(third); got[0] != "$kick" {
			t.Errorf("%s got %v", third, got)
		}

		// Published while the sender is down: sent after its restart.
		e.s.Stop()
		e.publishRoom(roomserver.OutputEvent{RoomID: roomA, EventID: "$m3", Type: "m.room.message", Sender: alice, Pos: 30})
		// A server that joined after $m3 (its join gave it $m3 in the
		// room's state and history) gets the events after its join only.
		e.rooms.join(roomA, late, 31)
		e.publishRoom(roomserver.OutputEvent{RoomID: roomA, EventID: "$m4", Type: "m.room.message", Sender: alice, Pos: 32})
		e.start()
		eventually(t, "$m4 delivered after the restart", func() bool { return slices.Contains(e.tr.pduIDs(remote), "$m4") })
		eventually(t, "$m4 at the late server", func() bool { return len(e.tr.pduIDs(late)) > 0 })
		if got := e.tr.pduIDs(late); !slices.Equal(got, []string{"$m4"}) {
			t.Errorf("%s, which joined after $m3, got %v", late, got)
		}
		if got := e.tr.pduIDs(remote); !slices.Contains(got, "$m3") {
			t.Errorf("%s got %v", remote, got)
		}
	})
}

func TestBroadcastPDUSkipsTheExcludedServers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.rooms.set(roomA, us, remote, third)
		e.rooms.join(roomA, late, 41) // after the join: has it from its own
		e.start()
		if err := e.s.BroadcastPDU(e.ctx, roomA, "$join", pdu(roomA, "$join"), 40, third); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the join at the other server", func() bool { return len(e.tr.pduIDs(remote)) == 1 })
		if got := e.tr.destinationsContacted(); !slices.Equal(got, []string{remote}) {
			t.Errorf("contacted %v", got)
		}
	})
}

// createSyncTables makes syncapi's receipt and presence tables as its
// migration 1 has them (the sender reads them; syncapi is not started).
func (e *env) createSyncTables() {
	e.t.Helper()
	for _, ddl := range []string{
		`CREATE TABLE sy_receipts (room_id TEXT NOT NULL, receipt_type TEXT NOT NULL, user_id TEXT NOT NULL,
			thread_id TEXT NOT NULL, event_id TEXT NOT NULL, ts BIGINT NOT NULL, pos BIGINT NOT NULL,
			PRIMARY KEY (room_id, receipt_type, user_id, thread_id))`,
		`CREATE TABLE sy_presence (user_id TEXT PRIMARY KEY, presence TEXT NOT NULL, status_msg TEXT,
			last_active_ms BIGINT NOT NULL, pos BIGINT NOT NULL)`,
	} {
		if _, err := e.db.ExecContext(e.ctx, ddl); err != nil {
			e.t.Fatal(err)
		}
	}
}

func TestTypingReceiptsAndPresenceOfLocalUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.withBus()
		e.opts.Presence = true
		e.createSyncTables()
		e.serveRoomsOfUser(map[string][]string{alice: {roomA}})
		e.rooms.set(roomA, us, remote)
		e.start()
		nowMS := time.Now().UnixMilli()
		e.publishSync(syncapi.OutputMessage{Kind: "typing", UserID: alice, RoomID: roomA, Typing: true, UntilMS: nowMS + 30_000})
		e.publishSync(syncapi.OutputMessage{Kind: "typing", UserID: bob, RoomID: roomA, Typing: true, UntilMS: nowMS + 30_000})
		// Sent before the end of typing is queued (a waiting one would be
		// replaced by it).
		eventually(t, "typing", func() bool { return len(e.tr.edus(remote, "m.typing")) == 1 })
		_, err := e.db.ExecContext(e.ctx, `INSERT INTO sy_receipts VALUES ($1, 'm.read', $2, 'main', '$read', 1234, 7),
			($1, 'm.read.private', $2, '', '$secret', 1235, 8)`, roomA, alice)
		if err != nil {
			t.Fatal(err)
		}
		e.publishSync(syncapi.OutputMessage{Kind: "receipt", Pos: 7, UserID: alice, RoomID: roomA})
		e.publishSync(syncapi.OutputMessage{Kind: "receipt", Pos: 8, UserID: alice, RoomID: roomA, Private: true})
		if _, err := e.db.ExecContext(e.ctx, `INSERT INTO sy_presence VALUES ($1, 'online', 'busy', $2, 9)`, alice, nowMS); err != nil {
			t.Fatal(err)
		}
		e.publishSync(syncapi.OutputMessage{Kind: "presence", Pos: 9, UserID: alice})
		e.publishSync(syncapi.OutputMessage{Kind: "account_data", Pos: 10, UserID: alice})
		e.publishSync(syncapi.OutputMessage{Kind: "typing", UserID: alice, RoomID: roomA, Typing: false})

		eventually(t, "the end of typing", func() bool { return len(e.tr.edus(remote, "m.typing")) == 2 })
		var types []string
		for _, txn := range e.tr.txns(remote) {
			for _, edu := range txn.EDUs {
				types = append(types, edu.Type)
			}
		}
		if !slices.Equal(types, []string{"m.typing", "m.receipt", "m.presence", "m.typing"}) {
			t.Errorf("EDUs %v", types)
		}
		typing := e.tr.edus(remote, "m.typing")
		assertJSON(t, typing[0].Content, `{"room_id":"`+roomA+`","typing":true,"user_id":"`+alice+`"}`)
		assertJSON(t, typing[1].Content, `{"room_id":"`+roomA+`","typing":false,"user_id":"`+alice+`"}`)
		assertJSON(t, e.tr.edus(remote, "m.receipt")[0].Content,
			`{"`+roomA+`":{"m.read":{"`+alice+`":{"data":{"thread_id":"main","ts":1234},"event_ids":["$read"]}}}}`)
		var p struct {
			Push []map[string]any `json:"push"`
		}
		if err := json.Unmarshal(e.tr.edus(remote, "m.presence")[0].Content, &p); err != nil || len(p.Push) != 1 {
			t.Fatalf("presence %s: %v", e.tr.edus(remote, "m.presence")[0].Content, err)
		}
		if u := p.Push[0]; u["user_id"] != alice || u["presence"] != "online" || u["status_msg"] != "busy" || u["currently_active"] != true {
			t.Errorf("presence update %v", u)
		}
	})
}

func TestAWaitingEDUIsReplacedByANewerOneOfTheSameKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.tr.setDown(true)
		e.start(func(o *Options) { o.Backoff = func(int) time.Duration { return time.Hour } })
		queue := func(n string) {
			if err := e.s.queueEDUs(e.ctx, []queuedEDU{{destination: remote, eduType: "m.typing", key: "k", content: json.RawMessage(`{"n":` + n + `}`)}}); err != nil {
				t.Fatal(err)
			}
		}
		queue("1")
		eventually(t, "a failed attempt", func() bool { return e.tr.attemptCount() >= 1 })
		queue("2")
		queue("3") // replaces 2; 1 is in the transaction begun
		e.tr.setDown(false)
		e.s.Wake(remote)
		eventually(t, "two EDUs", func() bool { return len(e.tr.edus(remote, "m.typing")) == 2 })
		edus := e.tr.edus(remote, "m.typing")
		if string(edus[0].Content) != `{"n":1}` || string(edus[1].Content) != `{"n":3}` {
			t.Errorf("delivered %s then %s", edus[0].Content, edus[1].Content)
		}
	})
}

// fakeDevices answers the userapi's device and key queries.
type fakeDevices struct {
	mu      sync.Mutex
	devices map[string]userapi.DeviceInfo
	keys    map[string]json.RawMessage
	master  json.RawMessage
}

func (f *fakeDevices) serve(e *env) {
	e.t.Helper()
	err := userapi.QueryDevices.Serve(e.bus, func(_ context.Context, req *userapi.QueryDevicesRequest) (*userapi.QueryDevicesResponse, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if req.UserID != alice {
			return nil, mxerr.NotFound("no such user")
		}
		resp := &userapi.QueryDevicesResponse{}
		for _, d := range f.devices {
			resp.Devices = append(resp.Devices, d)
		}
		return resp, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	err = userapi.QueryKeys.Serve(e.bus, func(_ context.Context, req *userapi.QueryKeysRequest) (*userapi.QueryKeysResponse, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return &userapi.QueryKeysResponse{
			DeviceKeys: map[string]map[string]json.RawMessage{alice: f.keys},
			MasterKeys: map[string]json.RawMessage{alice: f.master},
		}, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (f *fakeDevices) change(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func TestDeviceListAndSigningKeyUpdates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.withBus()
		e.serveRoomsOfUser(map[string][]string{alice: {roomA}})
		e.rooms.set(roomA, us, remote)
		keys := json.RawMessage(`{"algorithms":["m.olm.v1.curve25519-aes-sha2"],"device_id":"PHONE","keys":{"ed25519:PHONE":"k"},"user_id":"` + alice + `"}`)
		master := json.RawMessage(`{"keys":{"ed25519:m":"m"},"usage":["master"],"user_id":"` + alice + `"}`)
		devs := &fakeDevices{
			devices: map[string]userapi.DeviceInfo{"PHONE": {DeviceID: "PHONE", DisplayName: "Phone"}, "LAPTOP": {DeviceID: "LAPTOP"}},
			keys:    map[string]json.RawMessage{"PHONE": keys},
			master:  master,
		}
		devs.serve(e)
		e.start()

		e.publishKeyChange(alice)
		eventually(t, "the first updates", func() bool { return len(e.tr.edus(remote, "m.device_list_update")) == 2 })
		updates := e.tr.edus(remote, "m.device_list_update")
		assertJSON(t, updates[0].Content, `{"device_id":"LAPTOP","stream_id":1,"user_id":"`+alice+`"}`)
		assertJSON(t, updates[1].Content, `{"device_display_name":"Phone","device_id":"PHONE","keys":`+string(keys)+`,"prev_id":[1],"stream_id":2,"user_id":"`+alice+`"}`)
		eventually(t, "the signing key update", func() bool { return len(e.tr.edus(remote, "m.signing_key_update")) == 1 })
		assertJSON(t, e.tr.edus(remote, "m.signing_key_update")[0].Content, `{"master_key":`+string(master)+`,"user_id":"`+alice+`"}`)

		devs.change(func() { devs.devices["PHONE"] = userapi.DeviceInfo{DeviceID: "PHONE", DisplayName: "Old phone"} })
		e.publishKeyChange(alice)
		e.publishKeyChange(bob) // not ours to announce
		devs.change(func() { delete(devs.devices, "LAPTOP") })
		e.publishKeyChange(alice)
		eventually(t, "four updates", func() bool { return len(e.tr.edus(remote, "m.device_list_update")) >= 4 })
		updates = e.tr.edus(remote, "m.device_list_update")
		assertJSON(t, updates[2].Content, `{"device_display_name":"Old phone","device_id":"PHONE","keys":`+string(keys)+`,"prev_id":[2],"stream_id":3,"user_id":"`+alice+`"}`)
		// The deletion may be seen with the rename (the fake changed in
		// between); either way it comes last, as stream 4.
		assertJSON(t, updates[3].Content, `{"deleted":true,"device_id":"LAPTOP","prev_id":[3],"stream_id":4,"user_id":"`+alice+`"}`)
		if id, err := e.s.DeviceListStreamID(e.ctx, alice); err != nil || id != 4 {
			t.Errorf("stream ID %d (%v), want 4", id, err)
		}
		if n := len(e.tr.edus(remote, "m.signing_key_update")); n != 1 {
			t.Errorf("%d signing key updates for an unchanged key", n)
		}
	})
}

func TestToDeviceMessagesForRemoteUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.start()
		msgs := map[string]map[string]json.RawMessage{bob: {"DEV": json.RawMessage(`{"algorithm":"m.olm.v1.curve25519-aes-sha2"}`)}}
		for range 2 { // a client retrying the same request
			if err := e.s.QueueToDevice(e.ctx, remote, alice, "m.room.encrypted", "txn1", msgs); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "two EDUs", func() bool { return len(e.tr.edus(remote, "m.direct_to_device")) == 2 })
		var ids []string
		for _, edu := range e.tr.edus(remote, "m.direct_to_device") {
			var c struct {
				Sender    string                                `json:"sender"`
				Type      string                                `json:"type"`
				MessageID string                                `json:"message_id"`
				Messages  map[string]map[string]json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(edu.Content, &c); err != nil {
				t.Fatal(err)
			}
			if c.Sender != alice || c.Type != "m.room.encrypted" || len(c.MessageID) == 0 || len(c.MessageID) > 32 || string(c.Messages[bob]["DEV"]) != string(msgs[bob]["DEV"]) {
				t.Errorf("EDU %s", edu.Content)
			}
			ids = append(ids, c.MessageID)
		}
		if ids[0] != ids[1] {
			t.Errorf("a retried request got message IDs %s and %s", ids[0], ids[1])
		}
	})
}

// assertJSON compares JSON documents whatever their key order.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("bad JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expected JSON %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("got  %s\nwant %s", gb, wb)
	}
}
