package tests

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// The servers of the federation tests.
const (
	fedA = "ministere-a.test"
	fedB = "ministere-b.test"
	fedC = "externe.test"
)

// fedWait bounds how long a federation test waits for something to
// reach another server.
const fedWait = 45 * time.Second

// fedUser is a client on one server of a federation test, with its own
// sync position: waitFor long-polls /sync (never sleeps) until a
// condition on what it has seen holds.
type fedUser struct {
	t   *testing.T
	cli *mautrix.Client
	srv *testserver.Server

	since     string
	timeline  map[id.RoomID][]*event.Event
	state     map[id.RoomID][]*event.Event // the state sections
	ephemeral map[id.RoomID][]*event.Event
	invites   map[id.RoomID]bool
	toDevice  []*event.Event
	presence  []*event.Event
	changed   map[id.UserID]bool // device_lists.changed
}

func newFedUser(t *testing.T, srv *testserver.Server, localpart string) *fedUser {
	t.Helper()
	return &fedUser{
		t: t, cli: srv.RegisterUser(t, localpart), srv: srv,
		timeline: map[id.RoomID][]*event.Event{}, state: map[id.RoomID][]*event.Event{}, ephemeral: map[id.RoomID][]*event.Event{}, invites: map[id.RoomID]bool{},
		changed: map[id.UserID]bool{},
	}
}

func (u *fedUser) id() id.UserID { return u.cli.UserID }

// sync runs one long-poll and records what it brings.
func (u *fedUser) sync(ctx context.Context) error {
	resp, err := u.cli.SyncRequest(ctx, 1000, u.since, "", false, "")
	if err != nil {
		return err
	}
	u.since = resp.NextBatch
	for roomID, room := range resp.Rooms.Join {
		u.timeline[roomID] = append(u.timeline[roomID], room.Timeline.Events...)
		u.state[roomID] = append(u.state[roomID], room.State.Events...)
		u.ephemeral[roomID] = append(u.ephemeral[roomID], room.Ephemeral.Events...)
		delete(u.invites, roomID)
	}
	for roomID := range resp.Rooms.Invite {
		u.invites[roomID] = true
	}
	u.toDevice = append(u.toDevice, resp.ToDevice.Events...)
	u.presence = append(u.presence, resp.Presence.Events...)
	for _, user := range resp.DeviceLists.Changed {
		u.changed[user] = true
	}
	return nil
}

// waitFor syncs until cond holds, failing the test after fedWait.
func (u *fedUser) waitFor(what string, cond func() bool) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fedWait)
	defer cancel()
	for !cond() {
		if err := u.sync(ctx); err != nil {
			if ctx.Err() != nil {
				u.t.Fatalf("%s (%s) waited in vain for %s", u.id(), u.srv.Config.ServerName, what)
			}
			u.t.Fatalf("sync of %s: %v", u.id(), err)
		}
	}
}

// texts lists the bodies of the messages seen in a room, in order.
func (u *fedUser) texts(roomID id.RoomID) []string {
	var out []string
	for _, ev := range u.timeline[roomID] {
		if ev.Type == event.EventMessage {
			if body, ok := ev.Content.Raw["body"].(string); ok {
				out = append(out, body)
			}
		}
	}
	return out
}

// hasText says whether a message with this body was seen in the room.
func (u *fedUser) hasText(roomID id.RoomID, body string) bool {
	for _, b := range u.texts(roomID) {
		if b == body {
			return true
		}
	}
	return false
}

// waitText waits for a message with this body.
func (u *fedUser) waitText(roomID id.RoomID, body string) {
	u.t.Helper()
	u.waitFor("message "+body, func() bool { return u.hasText(roomID, body) })
}

// seenEvent says whether an event was seen in the room's timeline.
func (u *fedUser) seenEvent(roomID id.RoomID, eventID id.EventID) *event.Event {
	for _, ev := range u.timeline[roomID] {
		if ev.ID == eventID {
			return ev
		}
	}
	return nil
}

// waitMember waits until userID's membership is seen in the room.
func (u *fedUser) waitMember(roomID id.RoomID, userID id.UserID, membership event.Membership) {
	u.t.Helper()
	u.waitFor(string(userID)+" "+string(membership), func() bool {
		for _, ev := range append(u.state[roomID], u.timeline[roomID]...) {
			if ev.Type == event.StateMember && ev.GetStateKey() == string(userID) {
				if m, _ := ev.Content.Raw["membership"].(string); m == string(membership) {
					return true
				}
			}
		}
		return false
	})
}

// send sends a text message.
func (u *fedUser) send(ctx context.Context, roomID id.RoomID, body string) id.EventID {
	u.t.Helper()
	resp, err := u.cli.SendText(ctx, roomID, body)
	if err != nil {
		u.t.Fatalf("%s sends %q: %v", u.id(), body, err)
	}
	return resp.EventID
}

// join joins a room (ID or alias) through the given servers.
func (u *fedUser) join(ctx context.Context, room string, via ...string) id.RoomID {
	u.t.Helper()
	resp, err := u.cli.JoinRoom(ctx, room, &mautrix.ReqJoinRoom{Via: via})
	if err != nil {
		u.t.Fatalf("%s joins %s via %v: %v", u.id(), room, via, err)
	}
	return resp.RoomID
}

// publicRoom creates a public room; the others join it through its
// creator's server, each waits to see everyone joined.
func publicRoom(t *testing.T, ctx context.Context, owner *fedUser, others ...*fedUser) id.RoomID {
	t.Helper()
	created, err := owner.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Salon"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID
	for _, u := range others {
		u.join(ctx, string(roomID), owner.srv.Config.ServerName)
	}
	all := append([]*fedUser{owner}, others...)
	for _, u := range all {
		for _, m := range all {
			u.waitMember(roomID, m.id(), event.MembershipJoin)
		}
	}
	return roomID
}

// stateName reads the room's name as one server sees it ("" when unset).
func stateName(ctx context.Context, u *fedUser, roomID id.RoomID) string {
	var c struct {
		Name string `json:"name"`
	}
	if err := u.cli.StateEvent(ctx, roomID, event.StateRoomName, "", &c); err != nil {
		return ""
	}
	return c.Name
}

// lastState is the last state event of a type seen in the room's timeline.
func (u *fedUser) lastState(roomID id.RoomID, typ event.Type) *event.Event {
	var last *event.Event
	for _, ev := range u.timeline[roomID] {
		if ev.Type == typ {
			last = ev
		}
	}
	return last
}

// waitLastState waits until eventID is the last state event of its type
// in the room's timeline.
func (u *fedUser) waitLastState(roomID id.RoomID, typ event.Type, eventID id.EventID) {
	u.waitFor(typ.Type+" "+string(eventID), func() bool {
		last := u.lastState(roomID, typ)
		return last != nil && last.ID == eventID
	})
}
