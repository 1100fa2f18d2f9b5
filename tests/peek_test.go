package tests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// chunkBodies lists the body of each m.room.message of a chunk, and the
// types of all its events.
func chunkBodies(t *testing.T, chunk any) (bodies, types []string) {
	t.Helper()
	evs, ok := chunk.([]any)
	if !ok {
		t.Fatalf("chunk is not a list: %v", chunk)
	}
	for _, e := range evs {
		ev := e.(map[string]any)
		types = append(types, ev["type"].(string))
		if ev["type"] == "m.room.message" {
			bodies = append(bodies, ev["content"].(map[string]any)["body"].(string))
		}
	}
	return bodies, types
}

func hasState(state any, typ, stateKey string) map[string]any {
	evs, _ := state.([]any)
	for _, e := range evs {
		ev := e.(map[string]any)
		if ev["type"] == typ && ev["state_key"] == stateKey {
			return ev
		}
	}
	return nil
}

func setWorldReadable(t *testing.T, c *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	must[*mautrix.RespSendEvent](t)(c.SendStateEvent(ctxT(t), roomID, event.StateHistoryVisibility, "",
		map[string]any{"history_visibility": "world_readable"}))
}

func TestInitialSyncMember(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public"}))
	for _, text := range []string{"un", "deux", "trois"} {
		must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, text))
	}
	if err := alice.AddTag(ctx, room.RoomID, "u.work", 0.5); err != nil {
		t.Fatal(err)
	}
	base := srv.URL + "/_matrix/client/v3/rooms/" + room.RoomID.String()
	r := rawRequest(t, "GET", base+"/initialSync", alice.AccessToken, "")
	if r.status != 200 || r.body["room_id"] != room.RoomID.String() || r.body["membership"] != "join" || r.body["visibility"] != "public" {
		t.Fatalf("initialSync: %d %v", r.status, r.body)
	}
	msgs := r.body["messages"].(map[string]any)
	bodies, types := chunkBodies(t, msgs["chunk"])
	if len(bodies) != 3 || bodies[2] != "trois" || types[0] != "m.room.create" {
		t.Fatalf("chunk: %v %v", bodies, types)
	}
	if hasState(r.body["state"], "m.room.create", "") == nil || hasState(r.body["state"], "m.room.member", alice.UserID.String()) == nil {
		t.Fatalf("state: %v", r.body["state"])
	}
	ad, _ := r.body["account_data"].([]any)
	if len(ad) != 1 || ad[0].(map[string]any)["type"] != "m.tag" {
		t.Fatalf("account_data: %v", r.body["account_data"])
	}
	if p, ok := r.body["presence"].([]any); !ok || len(p) != 0 {
		t.Fatalf("presence: %v", r.body["presence"])
	}
	// The tokens page with /messages: nothing before the creation, nothing
	// after the end yet.
	for _, c := range []struct{ dir, tok string }{{"b", msgs["start"].(string)}, {"f", msgs["end"].(string)}} {
		m := rawRequest(t, "GET", base+"/messages?dir="+c.dir+"&from="+url.QueryEscape(c.tok), alice.AccessToken, "")
		if got, _ := m.body["chunk"].([]any); m.status != 200 || len(got) != 0 {
			t.Fatalf("/messages dir=%s from %s: %d %v", c.dir, c.tok, m.status, m.body)
		}
	}
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, "quatre"))
	m := rawRequest(t, "GET", base+"/messages?dir=f&from="+url.QueryEscape(msgs["end"].(string)), alice.AccessToken, "")
	if got, _ := chunkBodies(t, m.body["chunk"]); len(got) != 1 || got[0] != "quatre" {
		t.Fatalf("/messages after end: %v", m.body)
	}
}

func TestInitialSyncPeekAndForbidden(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	carol := srv.RegisterUser(t, "carol")
	open := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, open.RoomID, "before"))
	setWorldReadable(t, alice, open.RoomID)
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, open.RoomID, "after"))
	v3 := srv.URL + "/_matrix/client/v3/rooms/"

	// An outsider sees the world-readable part only, and the current state.
	r := rawRequest(t, "GET", v3+open.RoomID.String()+"/initialSync", bob.AccessToken, "")
	if r.status != 200 || r.body["membership"] != nil || r.body["visibility"] != "private" {
		t.Fatalf("peek: %d %v", r.status, r.body)
	}
	bodies, types := chunkBodies(t, r.body["messages"].(map[string]any)["chunk"])
	if len(bodies) != 1 || bodies[0] != "after" || len(types) != 1 {
		t.Fatalf("peek chunk: %v %v", bodies, types)
	}
	if hv := hasState(r.body["state"], "m.room.history_visibility", ""); hv == nil {
		t.Fatalf("peek state: %v", r.body["state"])
	}
	// /messages shows an outsider the same world-readable part, both ways.
	for _, dir := range []string{"b", "f"} {
		m := rawRequest(t, "GET", v3+open.RoomID.String()+"/messages?dir="+dir, bob.AccessToken, "")
		if m.status != 200 {
			t.Fatalf("outsider /messages dir=%s: %d %v", dir, m.status, m.body)
		}
		if bodies, _ := chunkBodies(t, m.body["chunk"]); len(bodies) != 1 || bodies[0] != "after" {
			t.Fatalf("outsider /messages dir=%s: %v", dir, bodies)
		}
	}

	// A former member of a shared room reads up to their leave.
	shared := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	must[*mautrix.RespJoinRoom](t)(carol.JoinRoomByID(ctx, shared.RoomID))
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, shared.RoomID, "while there"))
	must[*mautrix.RespLeaveRoom](t)(carol.LeaveRoom(ctx, shared.RoomID))
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, shared.RoomID, "once gone"))
	r = rawRequest(t, "GET", v3+shared.RoomID.String()+"/initialSync", carol.AccessToken, "")
	if r.status != 200 || r.body["membership"] != "leave" {
		t.Fatalf("former member: %d %v", r.status, r.body)
	}
	bodies, _ = chunkBodies(t, r.body["messages"].(map[string]any)["chunk"])
	if len(bodies) != 1 || bodies[0] != "while there" {
		t.Fatalf("former member chunk: %v", bodies)
	}
	if m := hasState(r.body["state"], "m.room.member", carol.UserID.String()); m == nil || m["content"].(map[string]any)["membership"] != "leave" {
		t.Fatalf("former member state: %v", r.body["state"])
	}

	cases := []struct {
		name, url, token, code string
		status                 int
	}{
		{"shared room, outsider", v3 + shared.RoomID.String() + "/initialSync", bob.AccessToken, "M_FORBIDDEN", 403},
		{"shared room, outsider's /messages", v3 + shared.RoomID.String() + "/messages?dir=b", bob.AccessToken, "M_FORBIDDEN", 403},
		{"unknown room", v3 + "!nope:localhost/initialSync", bob.AccessToken, "M_FORBIDDEN", 403},
		{"not a room ID", v3 + "nope/initialSync", bob.AccessToken, "M_INVALID_PARAM", 400},
		{"no access token", v3 + open.RoomID.String() + "/initialSync", "", "M_MISSING_TOKEN", 401},
	}
	for _, c := range cases {
		if r := rawRequest(t, "GET", c.url, c.token, ""); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}

func TestPeekEvents(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	open := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	setWorldReadable(t, alice, open.RoomID)
	shared := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))

	r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/rooms/"+open.RoomID.String()+"/initialSync", bob.AccessToken, "")
	end := r.body["messages"].(map[string]any)["end"].(string)
	events := srv.URL + "/_matrix/client/v3/events?room_id=" + url.QueryEscape(open.RoomID.String())

	// Nothing new: the wait ends with the timeout, the token unchanged.
	r = rawRequest(t, "GET", events+"&timeout=50&from="+url.QueryEscape(end), bob.AccessToken, "")
	if got, _ := r.body["chunk"].([]any); r.status != 200 || len(got) != 0 || r.body["start"] != end || r.body["end"] != end {
		t.Fatalf("empty wait: %d %v", r.status, r.body)
	}

	// A waiting peek is woken by the room's next message.
	done := make(chan rawResponse, 1)
	began := time.Now()
	go func() {
		// Not rawRequest: t.Fatal must not run outside the test's goroutine.
		var out rawResponse
		req, _ := http.NewRequest("GET", events+"&timeout=20000&from="+url.QueryEscape(end), nil)
		req.Header.Set("Authorization", "Bearer "+bob.AccessToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			out.status = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&out.body)
			resp.Body.Close()
		}
		done <- out
	}()
	time.Sleep(300 * time.Millisecond)
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, shared.RoomID, "elsewhere"))
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, open.RoomID, "live"))
	var got rawResponse
	select {
	case got = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the peek was not woken")
	}
	// Under the 5 s recheck of a peek without its consumer: the wake came
	// from the room's event.
	if took := time.Since(began); took > 4*time.Second {
		t.Fatalf("woken after %v", took)
	}
	bodies, types := chunkBodies(t, got.body["chunk"])
	if got.status != 200 || len(bodies) != 1 || bodies[0] != "live" || len(types) != 1 || got.body["start"] != end || got.body["end"] == end {
		t.Fatalf("woken peek: %d %v", got.status, got.body)
	}
	ev := got.body["chunk"].([]any)[0].(map[string]any)
	if ev["room_id"] != open.RoomID.String() {
		t.Fatalf("event without its room: %v", ev)
	}
	// From the new end, nothing again.
	next := got.body["end"].(string)
	r = rawRequest(t, "GET", events+"&timeout=0&from="+url.QueryEscape(next), bob.AccessToken, "")
	if c, _ := r.body["chunk"].([]any); r.status != 200 || len(c) != 0 {
		t.Fatalf("after end: %d %v", r.status, r.body)
	}

	base := srv.URL + "/_matrix/client/v3/events"
	cases := []struct {
		name, url, token, code string
		status                 int
	}{
		{"no room_id (the deprecated stream)", base + "?timeout=0", bob.AccessToken, "M_MISSING_PARAM", 400},
		{"not a room ID", base + "?room_id=nope", bob.AccessToken, "M_INVALID_PARAM", 400},
		{"bad from", events + "&from=x1", bob.AccessToken, "M_INVALID_PARAM", 400},
		{"bad timeout", events + "&timeout=soon", bob.AccessToken, "M_INVALID_PARAM", 400},
		{"shared room, outsider", base + "?timeout=0&room_id=" + url.QueryEscape(shared.RoomID.String()), bob.AccessToken, "M_FORBIDDEN", 403},
		{"no access token", events, "", "M_MISSING_TOKEN", 401},
	}
	for _, c := range cases {
		if r := rawRequest(t, "GET", c.url, c.token, ""); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}
