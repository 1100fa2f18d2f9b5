package tests

import (
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Redactions, /context, timestamp_to_event, relations, threads and the
// bundled aggregations seen through /sync and /messages.
func TestRoomEvents(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.New(t)
	alice, bob, eve := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob"), srv.RegisterUser(t, "eve")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})).RoomID
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room))
	send := func(cli *mautrix.Client, content map[string]any) id.EventID {
		t.Helper()
		return must[*mautrix.RespSendEvent](t)(cli.SendMessageEvent(ctx, room, event.EventMessage, content)).EventID
	}
	var ids []id.EventID
	for _, body := range []string{"one", "two", "three", "four", "five"} {
		ids = append(ids, send(alice, map[string]any{"msgtype": "m.text", "body": body}))
	}

	t.Run("redact", func(t *testing.T) {
		first := must[*mautrix.RespSendEvent](t)(alice.RedactEvent(ctx, room, ids[4], mautrix.ReqRedact{TxnID: "r1", Reason: "oops"}))
		again := must[*mautrix.RespSendEvent](t)(alice.RedactEvent(ctx, room, ids[4], mautrix.ReqRedact{TxnID: "r1", Reason: "oops"}))
		if first.EventID != again.EventID {
			t.Fatal("the same transaction sent two redactions")
		}
		_, err := bob.RedactEvent(ctx, room, ids[0])
		wantErr(t, err, "M_FORBIDDEN", 403)
		_, err = alice.RedactEvent(ctx, room, "$unknown")
		wantErr(t, err, "M_NOT_FOUND", 404)
		_, err = eve.RedactEvent(ctx, room, ids[0])
		wantErr(t, err, "M_FORBIDDEN", 403)
		ev := must[*event.Event](t)(bob.GetEvent(ctx, room, ids[4]))
		if len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil {
			t.Fatalf("redacted event %+v", ev)
		}
	})

	t.Run("context", func(t *testing.T) {
		c := must[*mautrix.RespContext](t)(bob.Context(ctx, room, ids[2], nil, 4))
		if c.Event.ID != ids[2] || len(c.EventsBefore) != 2 || c.EventsBefore[0].ID != ids[1] ||
			len(c.EventsAfter) != 2 || c.EventsAfter[0].ID != ids[3] || len(c.State) == 0 {
			t.Fatalf("context %+v", c)
		}
		// The tokens continue in /messages.
		older := must[*mautrix.RespMessages](t)(bob.Messages(ctx, room, c.Start, "", mautrix.DirectionBackward, nil, 1))
		if len(older.Chunk) != 1 || older.Chunk[0].Type == event.EventMessage && older.Chunk[0].Content.Raw["body"] == "one" {
			t.Fatalf("/messages from start: %+v", older.Chunk)
		}
		newer := must[*mautrix.RespMessages](t)(bob.Messages(ctx, room, c.End, "", mautrix.DirectionForward, nil, 1))
		if len(newer.Chunk) != 1 || newer.Chunk[0].ID == ids[3] {
			t.Fatalf("/messages from end repeats the context: %+v", newer.Chunk)
		}
		filtered := must[*mautrix.RespContext](t)(bob.Context(ctx, room, ids[2], &mautrix.FilterPart{NotTypes: []event.Type{event.EventMessage}}, 4))
		if len(filtered.EventsBefore)+len(filtered.EventsAfter) != 0 || filtered.Event.ID != ids[2] {
			t.Fatalf("filtered context %d+%d", len(filtered.EventsBefore), len(filtered.EventsAfter))
		}
		_, err := eve.Context(ctx, room, ids[2], nil, 4)
		wantErr(t, err, "M_NOT_FOUND", 404)
		_, err = bob.Context(ctx, room, "$unknown", nil, 4)
		wantErr(t, err, "M_NOT_FOUND", 404)
		if r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/rooms/"+string(room)+"/context/notanevent", bob.AccessToken, ""); r.body["errcode"] != "M_INVALID_PARAM" {
			t.Fatalf("bad event ID: %+v", r)
		}
	})

	t.Run("timestamp", func(t *testing.T) {
		first := must[*event.Event](t)(bob.GetEvent(ctx, room, ids[0]))
		found := must[*mautrix.RespTimestampToEvent](t)(bob.TimestampToEvent(ctx, room, time.UnixMilli(first.Timestamp), mautrix.DirectionBackward))
		if found.EventID == "" {
			t.Fatal("no event before the first message's timestamp")
		}
		_, err := bob.TimestampToEvent(ctx, room, time.Now().Add(time.Hour), mautrix.DirectionForward)
		wantErr(t, err, "M_NOT_FOUND", 404)
		_, err = eve.TimestampToEvent(ctx, room, time.Now(), mautrix.DirectionBackward)
		wantErr(t, err, "M_FORBIDDEN", 403)
		if r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v1/rooms/"+string(room)+"/timestamp_to_event?ts=1&dir=up", bob.AccessToken, ""); r.body["errcode"] != "M_INVALID_PARAM" {
			t.Fatalf("bad dir: %+v", r)
		}
	})

	t.Run("relations and threads", func(t *testing.T) {
		root := ids[0]
		thread := func(body string) id.EventID {
			return send(bob, map[string]any{"msgtype": "m.text", "body": body,
				"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
		}
		thread("t1")
		last := thread("t2")
		edit := send(alice, map[string]any{"msgtype": "m.text", "body": "* one!", "m.new_content": map[string]any{"msgtype": "m.text", "body": "one!"},
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": root}})
		must[*mautrix.RespSendEvent](t)(bob.SendReaction(ctx, room, root, "👍"))

		rel := must[*mautrix.RespGetRelations](t)(bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{Limit: 2}))
		if len(rel.Chunk) != 2 || rel.NextBatch == "" {
			t.Fatalf("relations page 1: %d, next %q", len(rel.Chunk), rel.NextBatch)
		}
		rest := must[*mautrix.RespGetRelations](t)(bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{Limit: 10, From: rel.NextBatch}))
		if len(rest.Chunk) != 2 || rest.NextBatch != "" {
			t.Fatalf("relations page 2: %d", len(rest.Chunk))
		}
		threaded := must[*mautrix.RespGetRelations](t)(bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{RelationType: event.RelThread, Dir: mautrix.DirectionForward}))
		if len(threaded.Chunk) != 2 || threaded.Chunk[1].ID != last {
			t.Fatalf("thread relations %+v", threaded.Chunk)
		}
		reactions := must[*mautrix.RespGetRelations](t)(bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{RelationType: event.RelAnnotation, EventType: event.EventReaction}))
		if len(reactions.Chunk) != 1 {
			t.Fatalf("reactions %+v", reactions.Chunk)
		}
		_, err := eve.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{})
		wantErr(t, err, "M_NOT_FOUND", 404)

		var threads struct {
			Chunk     []*event.Event `json:"chunk"`
			NextBatch string         `json:"next_batch"`
		}
		_, err = bob.MakeRequest(ctx, "GET", bob.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", room, "threads"}, map[string]string{"include": "participated"}), nil, &threads)
		if err != nil || len(threads.Chunk) != 1 || threads.Chunk[0].ID != root {
			t.Fatalf("threads %+v %v", threads, err)
		}
		_, err = alice.MakeRequest(ctx, "GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", room, "threads"}, map[string]string{"include": "some"}), nil, nil)
		wantErr(t, err, "M_INVALID_PARAM", 400)

		// Bundled aggregations reach /messages (and so /sync) unchanged.
		msgs := must[*mautrix.RespMessages](t)(bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50))
		var rootEv *event.Event
		for _, ev := range msgs.Chunk {
			if ev.ID == root {
				rootEv = ev
			}
		}
		if rootEv == nil || rootEv.Unsigned.Relations == nil {
			t.Fatalf("no bundled aggregations on the root in /messages")
		}
		raw, _ := json.Marshal(rootEv.Unsigned.Relations)
		var agg struct {
			Thread struct {
				Count  int          `json:"count"`
				Latest *event.Event `json:"latest_event"`
			} `json:"m.thread"`
			Replace *event.Event `json:"m.replace"`
		}
		_ = json.Unmarshal(raw, &agg)
		if agg.Thread.Count != 2 || agg.Thread.Latest == nil || agg.Thread.Latest.ID != last || agg.Replace == nil || agg.Replace.ID != edit {
			t.Fatalf("aggregations %s", raw)
		}
	})
}
