package tests

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// A server that joined a room late answers timestamp_to_event for a time
// before its join from the other server (GET /timestamp_to_event), and
// then has the event at its place in the room's history, where its user
// can read it.
func TestFederationTimestampToEvent(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room, sent := historyRoom(t, ctx, alice, bob, "shared", 5)
	third := must[*event.Event](t)(alice.cli.GetEvent(ctx, room, sent[2]))
	at := time.UnixMilli(third.Timestamp)

	// Before the room existed: neither server has anything.
	_, err := bob.cli.TimestampToEvent(ctx, room, time.UnixMilli(1), mautrix.DirectionBackward)
	wantErr(t, err, "M_NOT_FOUND", 404)

	// From the third message on: B alone would answer with bob's join;
	// it answers with what A has, one of the messages.
	want := must[*mautrix.RespTimestampToEvent](t)(alice.cli.TimestampToEvent(ctx, room, at, mautrix.DirectionForward))
	if !slices.Contains(sent, want.EventID) {
		t.Fatalf("A answers %s, not one of the messages", want.EventID)
	}
	got, err := bob.cli.TimestampToEvent(ctx, room, at, mautrix.DirectionForward)
	if err != nil || got.EventID != want.EventID || !got.Timestamp.Equal(want.Timestamp.Time) {
		t.Fatalf("bob gets %+v (%v), A has %+v", got, err, want)
	}
	// The event is history on B now: bob reads it in its context.
	around := must[*mautrix.RespContext](t)(bob.cli.Context(ctx, room, got.EventID, nil, 4))
	if around.Event == nil || around.Event.ID != got.EventID || around.Event.Content.Raw["body"] == nil {
		t.Fatalf("context of %s on B: %+v", got.EventID, around.Event)
	}
	// Backwards, B now has the history itself.
	want = must[*mautrix.RespTimestampToEvent](t)(alice.cli.TimestampToEvent(ctx, room, at, mautrix.DirectionBackward))
	got, err = bob.cli.TimestampToEvent(ctx, room, at, mautrix.DirectionBackward)
	if err != nil || got.EventID != want.EventID {
		t.Fatalf("backwards, bob gets %+v (%v), A has %+v", got, err, want)
	}

	// The federation endpoint itself: its parameters are checked.
	path := "/_matrix/federation/v1/timestamp_to_event/" + url.PathEscape(string(room))
	status, body := asServer(t, srv[1], srv[0], "GET", path+"?ts=1&dir=up", nil)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte("M_INVALID_PARAM")) {
		t.Fatalf("bad dir: %d %s", status, body)
	}
	status, body = asServer(t, srv[1], srv[0], "GET", path+"?ts="+url.QueryEscape(at.Format(time.RFC3339))+"&dir=f", nil)
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte("M_INVALID_PARAM")) {
		t.Fatalf("bad ts: %d %s", status, body)
	}
}

// An answer further back than backfill goes for a timestamp is fetched
// alone: B returns it and has it (it serves it to A over /event), though
// not yet in its timeline; a closer one is backfilled as usual.
func TestFederationTimestampToEventFarBack(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room, sent := historyRoom(t, ctx, alice, bob, "shared", 300)

	for _, c := range []struct {
		message   int
		inHistory bool
	}{{1, false}, {296, true}} {
		msg := must[*event.Event](t)(alice.cli.GetEvent(ctx, room, sent[c.message-1]))
		at := time.UnixMilli(msg.Timestamp)
		want := must[*mautrix.RespTimestampToEvent](t)(alice.cli.TimestampToEvent(ctx, room, at, mautrix.DirectionForward))
		got, err := bob.cli.TimestampToEvent(ctx, room, at, mautrix.DirectionForward)
		if err != nil || got.EventID != want.EventID {
			t.Fatalf("message %d: bob gets %+v (%v), A has %+v", c.message, got, err, want)
		}
		found := must[*event.Event](t)(alice.cli.GetEvent(ctx, room, got.EventID))
		status, body := asServer(t, srv[0], srv[1], "GET", "/_matrix/federation/v1/event/"+url.PathEscape(string(got.EventID)), nil)
		if status != http.StatusOK || !bytes.Contains(body, []byte(`"origin_server_ts":`+strconv.FormatInt(found.Timestamp, 10))) {
			t.Fatalf("message %d: B does not have %s: %d %s", c.message, got.EventID, status, body)
		}
		if c.inHistory {
			around := must[*mautrix.RespContext](t)(bob.cli.Context(ctx, room, got.EventID, nil, 4))
			if around.Event == nil || around.Event.ID != got.EventID {
				t.Fatalf("message %d: context on B: %+v", c.message, around.Event)
			}
		}
	}
}
