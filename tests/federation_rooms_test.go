package tests

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// A direct chat between two ministries: invite over federation, join
// through the inviter's server, messages both ways.
func TestFederationDirectMessage(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")

	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bob.id()},
	})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	bob.waitFor("the invite", func() bool { return bob.invites[room] })
	if _, err := bob.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bob accepts the invite: %v", err)
	}
	alice.waitMember(room, bob.id(), event.MembershipJoin)

	alice.send(ctx, room, "Bonjour de A")
	bob.waitText(room, "Bonjour de A")
	bob.send(ctx, room, "Bonjour de B")
	alice.waitText(room, "Bonjour de B")
	// Order is the same on both sides.
	bob.waitFor("both messages", func() bool { return len(bob.texts(room)) == 2 })
	if a, b := alice.texts(room), bob.texts(room); !slices.Equal(a, b) {
		t.Fatalf("alice sees %v, bob sees %v", a, b)
	}
}

// A room with members on three servers: the third joins through the
// second (not the creator's) server, and every message reaches everyone.
func TestFederationThreeServers(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB, fedC)
	alice, bob, carol := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob"), newFedUser(t, srv[2], "carol")

	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	bob.join(ctx, string(room), fedA)
	alice.waitMember(room, bob.id(), event.MembershipJoin)
	carol.join(ctx, string(room), fedB)
	for _, u := range []*fedUser{alice, bob, carol} {
		u.waitMember(room, carol.id(), event.MembershipJoin)
	}

	users := []*fedUser{alice, bob, carol}
	for _, u := range users {
		u.send(ctx, room, "message de "+u.srv.Config.ServerName)
	}
	for _, u := range users {
		for _, from := range users {
			u.waitText(room, "message de "+from.srv.Config.ServerName)
		}
	}
}

// Edits, reactions, redactions and state changes made on one server are
// seen the same on the others.
func TestFederationRelationsAndState(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB, fedC)
	alice, bob, carol := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob"), newFedUser(t, srv[2], "carol")
	room := publicRoom(t, ctx, alice, bob, carol)
	users := []*fedUser{alice, bob, carol}
	// bob (another server) may change the topic.
	levels := must[*mautrix.RespSendEvent](t)(alice.cli.SendStateEvent(ctx, room, event.StatePowerLevels, "", map[string]any{
		"users": map[string]int{string(bob.id()): 50},
	}))
	bob.waitLastState(room, event.StatePowerLevels, levels.EventID)

	original := alice.send(ctx, room, "version 1")
	edit := must[*mautrix.RespSendEvent](t)(alice.cli.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "* version 2",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "version 2"},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": original},
	}))
	reaction := must[*mautrix.RespSendEvent](t)(bob.cli.SendReaction(ctx, room, original, "👍"))
	doomed := carol.send(ctx, room, "à effacer")
	must[*mautrix.RespSendEvent](t)(carol.cli.RedactEvent(ctx, room, doomed))
	nameEv := must[*mautrix.RespSendEvent](t)(alice.cli.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "Cellule de crise"}))
	topicEv := must[*mautrix.RespSendEvent](t)(bob.cli.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "Point quotidien"}))
	marker := carol.send(ctx, room, "fin")

	for _, u := range users {
		// Three servers send with no order between them: carol's last
		// message may reach a server before bob's topic or reaction (its
		// prev_events need not name them), so every event checked is
		// waited for.
		u.waitFor("every event", func() bool {
			for _, want := range []id.EventID{marker, edit.EventID, reaction.EventID, nameEv.EventID, topicEv.EventID} {
				if u.seenEvent(room, want) == nil {
					return false
				}
			}
			return true
		})
		// The redacted message has no body left, on every server.
		ev, err := u.cli.GetEvent(ctx, room, doomed)
		if err != nil {
			t.Fatalf("%s: %v", u.srv.Config.ServerName, err)
		}
		if _, ok := ev.Content.Raw["body"]; ok {
			t.Fatalf("%s still shows the redacted message: %v", u.srv.Config.ServerName, ev.Content.Raw)
		}
		// The edit and the reaction relate to the original everywhere.
		rels := must[*mautrix.RespGetRelations](t)(u.cli.GetRelations(ctx, room, original, &mautrix.ReqGetRelations{}))
		var ids []id.EventID
		for _, r := range rels.Chunk {
			ids = append(ids, r.ID)
		}
		if !slices.Contains(ids, edit.EventID) || !slices.Contains(ids, reaction.EventID) {
			t.Fatalf("%s relates %v to the original, want the edit %s and the reaction %s", u.srv.Config.ServerName, ids, edit.EventID, reaction.EventID)
		}
		if name := stateName(ctx, u, room); name != "Cellule de crise" {
			t.Fatalf("%s names the room %q", u.srv.Config.ServerName, name)
		}
		var topic struct {
			Topic string `json:"topic"`
		}
		if err := u.cli.StateEvent(ctx, room, event.StateTopic, "", &topic); err != nil || topic.Topic != "Point quotidien" {
			t.Fatalf("%s: topic %q, %v", u.srv.Config.ServerName, topic.Topic, err)
		}
	}
}

// Typing notifications and read receipts cross servers.
func TestFederationTypingAndReceipts(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	room := publicRoom(t, ctx, alice, bob)

	if _, err := bob.cli.UserTyping(ctx, room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("bob typing", func() bool {
		for _, ev := range alice.ephemeral[room] {
			if ev.Type == event.EphemeralEventTyping {
				if users, ok := ev.Content.Raw["user_ids"].([]any); ok && slices.Contains(users, any(string(bob.id()))) {
					return true
				}
			}
		}
		return false
	})

	msg := alice.send(ctx, room, "lu ?")
	bob.waitText(room, "lu ?")
	if err := bob.cli.SendReceipt(ctx, room, msg, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("bob's receipt", func() bool {
		for _, ev := range alice.ephemeral[room] {
			if ev.Type != event.EphemeralEventReceipt {
				continue
			}
			byType, _ := ev.Content.Raw[string(msg)].(map[string]any)
			read, _ := byType["m.read"].(map[string]any)
			if _, ok := read[string(bob.id())]; ok {
				return true
			}
		}
		return false
	})
}

// A remote user's profile is asked of their server.
func TestFederationRemoteProfile(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	if err := bob.cli.SetDisplayName(ctx, "Bob de B"); err != nil {
		t.Fatal(err)
	}
	p, err := alice.cli.GetProfile(ctx, bob.id())
	if err != nil {
		t.Fatal(err)
	}
	if p.DisplayName != "Bob de B" {
		t.Fatalf("remote profile: %+v", p)
	}
	dn, err := alice.cli.GetDisplayName(ctx, bob.id())
	if err != nil || dn.DisplayName != "Bob de B" {
		t.Fatalf("remote display name: %+v, %v", dn, err)
	}
	_, err = alice.cli.GetProfile(ctx, id.UserID("@personne:"+fedB))
	wantErr(t, err, "M_NOT_FOUND", 404)
}

// A room is joined by an alias of another server; that server's
// directory is readable from here.
func TestFederationAliasJoinAndDirectory(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "public_chat", RoomAliasName: "annonces", Name: "Annonces", Visibility: "public",
	})
	if err != nil {
		t.Fatal(err)
	}
	alias := id.RoomAlias("#annonces:" + fedA)

	resolved, err := bob.cli.ResolveAlias(ctx, alias)
	if err != nil {
		t.Fatalf("resolve a remote alias: %v", err)
	}
	if resolved.RoomID != created.RoomID || !slices.Contains(resolved.Servers, fedA) {
		t.Fatalf("resolved %+v", resolved)
	}
	if got := bob.join(ctx, string(alias)); got != created.RoomID {
		t.Fatalf("joined %s, want %s", got, created.RoomID)
	}
	alice.waitMember(created.RoomID, bob.id(), event.MembershipJoin)

	dir, err := bob.cli.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: fedA})
	if err != nil {
		t.Fatalf("remote directory: %v", err)
	}
	found := false
	for _, r := range dir.Chunk {
		found = found || r.RoomID == created.RoomID
	}
	if !found {
		t.Fatalf("the directory of %s lacks %s: %+v", fedA, created.RoomID, dir.Chunk)
	}
}

// A remote invite is rejected (make_leave/send_leave) and a user of
// another server knocks (make_knock/send_knock): the room's server sees
// both.
func TestFederationRejectInviteAndKnock(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB)
	alice, bob := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob")
	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Invite: []id.UserID{bob.id()},
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	bob.waitFor("the invite", func() bool { return bob.invites[room] })
	if _, err := bob.cli.LeaveRoom(ctx, room); err != nil {
		t.Fatalf("bob rejects the invite: %v", err)
	}
	alice.waitMember(room, bob.id(), event.MembershipLeave)

	if _, err := bob.cli.KnockRoom(ctx, string(room), &mautrix.ReqKnockRoom{Via: []string{fedA}, Reason: "laissez-moi entrer"}); err != nil {
		t.Fatalf("bob knocks: %v", err)
	}
	alice.waitMember(room, bob.id(), event.MembershipKnock)
	// Accepting the knock is an invite; bob joins.
	if _, err := alice.cli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.id()}); err != nil {
		t.Fatal(err)
	}
	bob.waitFor("the invite after the knock", func() bool { return bob.invites[room] })
	if _, err := bob.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	alice.waitMember(room, bob.id(), event.MembershipJoin)
}
