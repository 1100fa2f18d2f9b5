package roomserver

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSendEvent(t *testing.T) {
	forEachBackend(t, testSendEvent)
}

func testSendEvent(t *testing.T, env *testEnv) {
	alice, bob := user("alice"), user("bob")
	roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
	env.mustMember(bob, roomID, bob, MembershipJoin)

	t.Run("transaction IDs make sends idempotent", func(t *testing.T) {
		req := &SendEventRequest{Sender: alice, DeviceID: "DEV", TxnID: "t1", RoomID: roomID, Type: "m.room.message",
			Content: json.RawMessage(`{"body":"once","msgtype":"m.text"}`)}
		first, err := SendEvent.Call(env.ctx, env.bus, req)
		if err != nil {
			t.Fatal(err)
		}
		second, err := SendEvent.Call(env.ctx, env.bus, req)
		if err != nil || second.EventID != first.EventID {
			t.Fatalf("repeat: %v %v, want %s", second, err, first.EventID)
		}
		req.DeviceID = "OTHER"
		third, err := SendEvent.Call(env.ctx, env.bus, req)
		if err != nil || third.EventID == first.EventID {
			t.Fatalf("another device's txn must send again: %v %v", third, err)
		}
		var n int
		_ = env.db.QueryRowContext(env.ctx, `SELECT COUNT(*) FROM rs_events WHERE txn_id = 't1'`).Scan(&n)
		if n != 2 {
			t.Fatalf("%d events stored for 2 distinct transactions", n)
		}
	})

	t.Run("concurrent repeats of one transaction send once", func(t *testing.T) {
		req := &SendEventRequest{Sender: alice, DeviceID: "DEV", TxnID: "burst", RoomID: roomID, Type: "m.room.message",
			Content: json.RawMessage(`{"body":"burst"}`)}
		ids := make(chan string, 8)
		for range 8 {
			go func() {
				resp, err := SendEvent.Call(env.ctx, env.bus, req)
				if err != nil {
					ids <- "error: " + err.Error()
					return
				}
				ids <- resp.EventID
			}()
		}
		first := <-ids
		for range 7 {
			if id := <-ids; id != first {
				t.Fatalf("got %s and %s for one transaction", first, id)
			}
		}
	})

	t.Run("validation", func(t *testing.T) {
		_, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: alice, RoomID: roomID, Type: "m.room.message", Content: json.RawMessage(`[1]`)})
		wantCode(t, err, "M_BAD_JSON")
		_, err = SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: alice, RoomID: roomID, Type: "m.room.message", Content: json.RawMessage(`"text"`)})
		wantCode(t, err, "M_BAD_JSON")
		_, err = env.send(alice, roomID, "m.room.message", map[string]string{"body": strings.Repeat("x", 70000)})
		wantCode(t, err, "M_TOO_LARGE")
		_, err = env.send(alice, roomID, "m.room.message", map[string]string{"body": strings.Repeat("x", 65000)})
		wantCode(t, err, "M_TOO_LARGE") // content fits, the PDU does not
		_, err = env.send(user("stranger"), roomID, "m.room.message", map[string]string{"body": "hi"})
		wantCode(t, err, "M_FORBIDDEN")
		_, err = env.send(alice, "!missing:"+testServer, "m.room.message", map[string]string{"body": "hi"})
		wantCode(t, err, "M_FORBIDDEN")
		// bob (level 0) may not set state needing 50.
		_, err = env.sendState(bob, roomID, "m.room.name", "", map[string]string{"name": "mine"})
		wantCode(t, err, "M_FORBIDDEN")
		_, err = env.sendState(bob, roomID, "m.room.create", "", map[string]string{})
		wantCode(t, err, "M_FORBIDDEN")
		if _, err := env.sendState(alice, roomID, "m.room.name", "", map[string]string{"name": "ours"}); err != nil {
			t.Fatal(err)
		}
		_, err = env.sendState(alice, roomID, "m.room.canonical_alias", "", map[string]string{"alias": "#unknown:" + testServer})
		wantCode(t, err, "M_BAD_ALIAS")
	})
}

func TestRedaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice, bob := user("alice"), user("bob")
		for _, v := range []string{"1", "10", "11", "12"} {
			t.Run("v"+v, func(t *testing.T) {
				roomID := env.createRoom(CreateRoomRequest{Sender: alice, RoomVersion: v, Preset: presetPublic})
				env.mustMember(bob, roomID, bob, MembershipJoin)
				msg := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "secret", "msgtype": "m.text"})
				bobs := env.mustSend(bob, roomID, "m.room.message", map[string]string{"body": "bob's"})

				_, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: bob, RoomID: roomID, Type: "m.room.redaction", Redacts: msg, Content: json.RawMessage(`{}`)})
				wantCode(t, err, "M_FORBIDDEN") // bob may only redact his own events
				_, err = SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: alice, RoomID: roomID, Type: "m.room.redaction", Redacts: "$nope", Content: json.RawMessage(`{}`)})
				wantCode(t, err, "M_NOT_FOUND")
				if _, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: bob, RoomID: roomID, Type: "m.room.redaction", Redacts: bobs, Content: json.RawMessage(`{}`)}); err != nil {
					t.Fatalf("redact own event: %v", err)
				}
				red, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{Sender: alice, RoomID: roomID, Type: "m.room.redaction", Redacts: msg,
					Content: json.RawMessage(`{"reason":"oops"}`)})
				if err != nil {
					t.Fatal(err)
				}
				raw := env.rawEvent(red.EventID)
				content := raw["content"].(map[string]any)
				if v == "11" || v == "12" {
					if content["redacts"] != msg || raw["redacts"] != nil {
						t.Fatalf("v%s redaction must carry redacts in content only: %v", v, raw)
					}
				} else if raw["redacts"] != msg {
					t.Fatalf("v%s redaction must carry redacts at the top level: %v", v, raw)
				}

				got, err := QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: bob, RoomID: roomID, EventID: msg})
				if err != nil {
					t.Fatal(err)
				}
				if string(got.Event.Content) != "{}" {
					t.Fatalf("redacted content %s", got.Event.Content)
				}
				unsigned := decode(t, got.Event.Unsigned)
				because, _ := unsigned["redacted_because"].(map[string]any)
				if because["event_id"] != red.EventID || because["redacts"] != msg {
					t.Fatalf("redacted_because %v", unsigned)
				}
				redaction, err := QueryEvent.Call(env.ctx, env.bus, &QueryEventRequest{UserID: bob, RoomID: roomID, EventID: red.EventID})
				if err != nil || redaction.Event.Redacts != msg {
					t.Fatalf("client redaction event lacks redacts: %+v %v", redaction, err)
				}
			})
		}
	})
}
