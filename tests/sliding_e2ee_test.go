package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// ssE2EEResponse is what Element X's encryption sync reads of a sliding
// sync response: the to_device and e2ee extensions, and the rooms' counts.
type ssE2EEResponse struct {
	Pos   string `json:"pos"`
	Rooms map[string]struct {
		Initial           bool      `json:"initial"`
		Timeline          []ssEvent `json:"timeline"`
		NotificationCount *int      `json:"notification_count"`
		HighlightCount    *int      `json:"highlight_count"`
	} `json:"rooms"`
	Extensions struct {
		ToDevice *struct {
			NextBatch string `json:"next_batch"`
			Events    []struct {
				Sender  string          `json:"sender"`
				Type    string          `json:"type"`
				Content json.RawMessage `json:"content"`
			} `json:"events"`
		} `json:"to_device"`
		E2EE *struct {
			DeviceLists *struct {
				Changed []string `json:"changed"`
				Left    []string `json:"left"`
			} `json:"device_lists"`
			OTKCounts      map[string]int `json:"device_one_time_keys_count"`
			UnusedFallback []string       `json:"device_unused_fallback_key_types"`
		} `json:"e2ee"`
	} `json:"extensions"`
}

// slidingE2EE posts a request as Element X does (pos and timeout in the
// query string) and decodes the E2EE view of the answer.
func slidingE2EE(t *testing.T, c *mautrix.Client, pos string, timeoutMS int, body map[string]any) *ssE2EEResponse {
	t.Helper()
	q := map[string]string{}
	if pos != "" {
		q["pos"] = pos
	}
	if timeoutMS >= 0 {
		q["timeout"] = strconv.Itoa(timeoutMS)
	}
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"unstable", "org.matrix.simplified_msc3575", "sync"}, q)
	var resp ssE2EEResponse
	if _, err := c.MakeRequest(ctxT(t), "POST", u, body, &resp); err != nil {
		t.Fatalf("sliding sync: %v", err)
	}
	return &resp
}

// encryptionBody is the request of Element X's encryption sync: no
// lists, the two E2EE extensions; since is the last to_device next_batch.
func encryptionBody(since string, toDevice, e2ee bool) map[string]any {
	td := map[string]any{"enabled": toDevice}
	if since != "" {
		td["since"] = since
	}
	return map[string]any{
		"conn_id":    "encryption",
		"extensions": map[string]any{"to_device": td, "e2ee": map[string]any{"enabled": e2ee}},
	}
}

func sendToDevice(t *testing.T, srv *testserver.Server, from *mautrix.Client, to *mautrix.Client, txn string) {
	t.Helper()
	wantStatus(t, rawRequest(t, "PUT", srv.URL+"/_matrix/client/v3/sendToDevice/m.test/"+txn, from.AccessToken,
		fmt.Sprintf(`{"messages":{%q:{%q:{"n":%q}}}}`, to.UserID, to.DeviceID, txn)), 200, "")
}

// To-device through the extension: delivered, delivered again while
// since does not acknowledge them, gone once it does; the limit; a
// waiting request woken by a new message.
func TestSlidingToDevice(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	sendToDevice(t, srv, bob, alice, "t1")
	sendToDevice(t, srv, bob, alice, "t2")

	first := slidingE2EE(t, alice, "", -1, encryptionBody("", true, true))
	td := first.Extensions.ToDevice
	if td == nil || len(td.Events) != 2 || td.NextBatch == "" || td.Events[0].Sender != bob.UserID.String() || td.Events[0].Type != "m.test" {
		t.Fatalf("first to_device: %+v", td)
	}
	// Not acknowledged (no since): the same messages again.
	again := slidingE2EE(t, alice, first.Pos, 0, encryptionBody("", true, true))
	if got := again.Extensions.ToDevice; got == nil || len(got.Events) != 2 {
		t.Fatalf("unacknowledged messages not sent again: %+v", got)
	}
	// Acknowledged: gone, and the response is immediate and empty.
	acked := slidingE2EE(t, alice, again.Pos, 0, encryptionBody(td.NextBatch, true, true))
	if got := acked.Extensions.ToDevice; got == nil || len(got.Events) != 0 || got.NextBatch == "" {
		t.Fatalf("acknowledged messages sent again: %+v", got)
	}
	// Even without since, on a new connection: they were deleted.
	fresh := slidingE2EE(t, alice, "", -1, encryptionBody("", true, true))
	if got := fresh.Extensions.ToDevice; got == nil || len(got.Events) != 0 {
		t.Fatalf("deleted messages came back: %+v", got)
	}

	// The limit: five messages, two at a time.
	for i := range 5 {
		sendToDevice(t, srv, bob, alice, fmt.Sprintf("bulk%d", i))
	}
	since, pos, got := fresh.Extensions.ToDevice.NextBatch, fresh.Pos, []string{}
	for range 4 {
		body := encryptionBody(since, true, true)
		body["extensions"].(map[string]any)["to_device"].(map[string]any)["limit"] = 2
		r := slidingE2EE(t, alice, pos, 0, body)
		if n := len(r.Extensions.ToDevice.Events); n > 2 {
			t.Fatalf("%d events over a limit of 2", n)
		}
		for _, ev := range r.Extensions.ToDevice.Events {
			var c struct {
				N string `json:"n"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			got = append(got, c.N)
		}
		since, pos = r.Extensions.ToDevice.NextBatch, r.Pos
	}
	if !slices.Equal(got, []string{"bulk0", "bulk1", "bulk2", "bulk3", "bulk4"}) {
		t.Fatalf("delivered %v", got)
	}

	// A waiting request wakes for a to-device message.
	done := make(chan *ssE2EEResponse, 1)
	go func() { done <- slidingE2EE(t, alice, pos, 20000, encryptionBody(since, true, true)) }()
	time.Sleep(300 * time.Millisecond)
	sendToDevice(t, srv, bob, alice, "wake")
	select {
	case r := <-done:
		if r.Extensions.ToDevice == nil || len(r.Extensions.ToDevice.Events) != 1 {
			t.Fatalf("woken with %+v", r.Extensions.ToDevice)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting sliding sync was not woken by a to-device message")
	}
	// A malformed since is the client's error.
	u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"unstable", "org.matrix.simplified_msc3575", "sync"}, nil)
	_, err := alice.MakeRequest(ctxT(t), "POST", u, encryptionBody("s1_2_3", true, true), nil)
	wantErr(t, err, "M_INVALID_PARAM", 400)
}

// The e2ee extension: key counts; device lists on a connection's later
// responses, a waiting request woken by another user's new device, a
// response without the extension not losing the change.
func TestSlidingE2EEDeviceLists(t *testing.T) {
	srv := testserver.New(t)
	alice, bob, carol := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "carol")
	ctx := ctxT(t)
	up := srv.URL + "/_matrix/client/v3/keys/upload"
	wantStatus(t, rawRequest(t, "POST", up, alice.AccessToken,
		`{"one_time_keys":{"signed_curve25519:A":{"key":"a"},"signed_curve25519:B":{"key":"b"}},
		  "fallback_keys":{"signed_curve25519:F":{"key":"f","fallback":true}}}`), 200, "")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})).RoomID
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))

	first := slidingE2EE(t, alice, "", -1, encryptionBody("", true, true))
	e := first.Extensions.E2EE
	if e == nil || e.OTKCounts["signed_curve25519"] != 2 || !slices.Equal(e.UnusedFallback, []string{"signed_curve25519"}) {
		t.Fatalf("e2ee: %+v", e)
	}
	if e.DeviceLists != nil {
		t.Fatalf("device_lists on a connection's first response: %+v", e.DeviceLists)
	}
	// Nothing changed: an immediate answer with empty lists.
	quiet := slidingE2EE(t, alice, first.Pos, 0, encryptionBody("", true, true))
	if dl := quiet.Extensions.E2EE.DeviceLists; dl == nil || len(dl.Changed)+len(dl.Left) != 0 {
		t.Fatalf("device_lists with nothing changed: %+v", dl)
	}

	// Bob logs in on a new device, which uploads its keys; carol, who
	// shares no room, does the same.
	done := make(chan *ssE2EEResponse, 1)
	go func() { done <- slidingE2EE(t, alice, quiet.Pos, 20000, encryptionBody("", true, true)) }()
	time.Sleep(300 * time.Millisecond)
	bob2 := loginAgain(t, bob, "password-bob")
	keys, _ := signedDeviceKeys(t, bob2.UserID.String(), bob2.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", up, bob2.AccessToken, `{"device_keys":`+keys+`}`), 200, "")
	var woken *ssE2EEResponse
	select {
	case woken = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting sliding sync was not woken by a device-list change")
	}
	changed := []string{}
	pos := woken.Pos
	if dl := woken.Extensions.E2EE.DeviceLists; dl != nil {
		changed = dl.Changed
	}
	if !slices.Contains(changed, bob.UserID.String()) {
		t.Fatalf("changed = %v, want bob", changed)
	}
	ckeys, _ := signedDeviceKeys(t, carol.UserID.String(), carol.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", up, carol.AccessToken, `{"device_keys":`+ckeys+`}`), 200, "")

	// Bob's first device uploads keys while alice's requests leave the
	// extension out; the change comes once it is back.
	bkeys, _ := signedDeviceKeys(t, bob.UserID.String(), bob.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", up, bob.AccessToken, `{"device_keys":`+bkeys+`}`), 200, "")
	time.Sleep(500 * time.Millisecond) // the change is recorded from KEY_CHANGES
	without := slidingE2EE(t, alice, pos, 2000, encryptionBody("", true, false))
	if without.Extensions.E2EE != nil {
		t.Fatalf("e2ee sent while disabled: %+v", without.Extensions.E2EE)
	}
	changed = nil
	pos = without.Pos
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(changed, bob.UserID.String()) && time.Now().Before(deadline) {
		r := slidingE2EE(t, alice, pos, 2000, encryptionBody("", true, true))
		if dl := r.Extensions.E2EE.DeviceLists; dl != nil {
			changed = append(changed, dl.Changed...)
		}
		pos = r.Pos
	}
	if !slices.Contains(changed, bob.UserID.String()) || slices.Contains(changed, carol.UserID.String()) {
		t.Fatalf("changed after a response without e2ee = %v, want bob and not carol", changed)
	}

	// Bob leaves the only room he shared with alice: left.
	must[*mautrix.RespLeaveRoom](t)(bob.LeaveRoom(ctx, room))
	var left []string
	deadline = time.Now().Add(10 * time.Second)
	for !slices.Contains(left, bob.UserID.String()) && time.Now().Before(deadline) {
		r := slidingE2EE(t, alice, pos, 2000, encryptionBody("", true, true))
		if dl := r.Extensions.E2EE.DeviceLists; dl != nil {
			left = append(left, dl.Left...)
		}
		pos = r.Pos
	}
	if !slices.Contains(left, bob.UserID.String()) {
		t.Fatalf("left = %v, want bob", left)
	}
}

// notification_count and highlight_count of a room in Element X's room
// list: a message from another user counts, a read receipt (which wakes
// a waiting request) resets them.
func TestSlidingUnreadCounts(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob)
	body := elementXBody([][2]int{{0, 19}}, nil)
	body["extensions"].(map[string]any)["to_device"] = map[string]any{"enabled": true}
	body["extensions"].(map[string]any)["e2ee"] = map[string]any{"enabled": true}

	first := slidingE2EE(t, bob, "", -1, body)
	counts := func(r *ssE2EEResponse) (int, int) {
		t.Helper()
		room, ok := r.Rooms[roomID.String()]
		if !ok || room.NotificationCount == nil || room.HighlightCount == nil {
			t.Fatalf("room or its counts missing: %+v", r.Rooms)
		}
		return *room.NotificationCount, *room.HighlightCount
	}
	n0, _ := counts(first)

	mention := map[string]any{"msgtype": "m.text", "body": "bob: regarde", "m.mentions": map[string]any{"user_ids": []string{bob.UserID.String()}}}
	last := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, roomID, event.EventMessage, mention))
	// The message comes with its counts, or, when the push consumer lags
	// (past the short wait of a sync), the counts follow in a later
	// response.
	second, n, h := first, -1, -1
	for deadline := time.Now().Add(10 * time.Second); (n != n0+1 || h != 1) && time.Now().Before(deadline); {
		second = slidingE2EE(t, bob, second.Pos, 1000, body)
		if _, ok := second.Rooms[roomID.String()]; ok {
			n, h = counts(second)
		}
	}
	if n != n0+1 || h != 1 {
		t.Fatalf("after a mention: %d notifications, %d highlights; want %d and 1", n, h, n0+1)
	}
	// Alice's own message does not count for her.
	if n, _ := counts(slidingE2EE(t, alice, "", -1, body)); n != 0 {
		t.Fatalf("alice's own messages count for her: %d", n)
	}

	// Bob reads: a waiting request gets the room again, counts reset.
	done := make(chan *ssE2EEResponse, 1)
	go func() { done <- slidingE2EE(t, bob, second.Pos, 20000, body) }()
	time.Sleep(300 * time.Millisecond)
	if err := bob.SendReceipt(ctx, roomID, last.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if _, ok := r.Rooms[roomID.String()]; !ok {
			t.Fatalf("woken without the room: %+v", r.Rooms)
		}
		if n, h := counts(r); n != 0 || h != 0 {
			t.Fatalf("after the receipt: %d notifications, %d highlights", n, h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting sliding sync was not woken by the receipt")
	}
}
