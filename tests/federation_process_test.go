package tests

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Two ministries' servers as separate `chappe serve` processes, each with
// its own storage and bus (SQLite and embedded NATS; a PostgreSQL schema
// and a NATS subject prefix when the tests run on PostgreSQL), federating
// over TLS as deployed: a direct chat with an invite across them, the
// join, messages both ways.
func TestFederationAcrossOSProcesses(t *testing.T) {
	bin := buildChappeOrSkip(t)
	procs := startFederationProcesses(t, bin, fedA, fedB)
	ctx := ctxT(t)
	alice, bob := newFedUser(t, procs[0], "alice"), newFedUser(t, procs[1], "bob")

	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bob.id()},
	})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	bob.waitFor("alice's invite", func() bool { return bob.invites[room] })
	bob.join(ctx, string(room), fedA)
	alice.waitMember(room, bob.id(), event.MembershipJoin)

	alice.send(ctx, room, "Bonjour du processus A")
	bob.waitText(room, "Bonjour du processus A")
	bob.send(ctx, room, "Bonjour du processus B")
	alice.waitText(room, "Bonjour du processus B")
	bob.waitFor("both messages", func() bool { return len(bob.texts(room)) == 2 })
	if a, b := alice.texts(room), bob.texts(room); !slices.Equal(a, b) {
		t.Fatalf("alice sees %v, bob sees %v", a, b)
	}
}
