package tests

import (
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// stop stops server i and returns what starts it again on the same
// data, database and federation port, telling it where the others are.
func stop(t *testing.T, srv []*testserver.Server, i int) (restart func()) {
	t.Helper()
	cfg := srv[i].Config
	addr := srv[i].FederationAddr()
	srv[i].Close()
	return func() {
		t.Helper()
		cfg.Federation.Listen = addr
		srv[i] = testserver.Start(t, cfg)
		hosts := map[string]string{}
		for _, s := range srv {
			hosts[s.Config.ServerName] = s.FederationAddr()
		}
		srv[i].Server.Federation.SetHostMap(hosts)
	}
}

// A server stopped while the others talk catches up once restarted: the
// next event it receives refers to events it missed, which it fetches.
func TestFederationCatchUpAfterRestart(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB, fedC)
	alice, bob, carol := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob"), newFedUser(t, srv[2], "carol")
	room := publicRoom(t, ctx, alice, bob, carol)

	restart := stop(t, srv, 2)
	missed := []string{"pendant la panne 1", "pendant la panne 2", "pendant la panne 3"}
	for _, body := range missed {
		bob.send(ctx, room, body)
	}
	for _, body := range missed {
		alice.waitText(room, body)
	}
	restart()
	// carol's client now talks to the new process (same database).
	c, err := mautrix.NewClient(srv[2].URL, carol.id(), carol.cli.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	carol.cli, carol.srv = c, srv[2]

	alice.send(ctx, room, "après la panne")
	carol.waitText(room, "après la panne")
	for _, body := range missed {
		carol.waitText(room, body)
	}
	// And carol's server sends again.
	carol.send(ctx, room, "de retour")
	alice.waitText(room, "de retour")
	bob.waitText(room, "de retour")
}

// Two servers change the room's name at the same moment: once each has
// both changes, all servers resolve the same name.
func TestFederationConcurrentStateConverges(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederation(t, fedA, fedB, fedC)
	alice, bob, carol := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "bob"), newFedUser(t, srv[2], "carol")
	room := publicRoom(t, ctx, alice, bob, carol)
	// bob may change the name too.
	levels := must[*mautrix.RespSendEvent](t)(alice.cli.SendStateEvent(ctx, room, event.StatePowerLevels, "", map[string]any{
		"users": map[string]int{string(bob.id()): 100},
	}))
	bob.waitLastState(room, event.StatePowerLevels, levels.EventID)

	var wg sync.WaitGroup
	names := map[*fedUser]string{alice: "Nom choisi par A", bob: "Nom choisi par B"}
	ids := map[*fedUser]id.EventID{}
	var mu sync.Mutex
	for u, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := u.cli.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": name})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[u] = resp.EventID
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	users := []*fedUser{alice, bob, carol}
	for _, u := range users {
		for _, evID := range ids {
			u.waitFor("both name changes", func() bool {
				_, err := u.cli.GetEvent(ctx, room, evID)
				return err == nil
			})
		}
	}
	// A message from each server merges the branches everywhere.
	for _, u := range users {
		u.send(ctx, room, "fusion "+u.srv.Config.ServerName)
	}
	for _, u := range users {
		for _, from := range users {
			u.waitText(room, "fusion "+from.srv.Config.ServerName)
		}
	}
	want := stateName(ctx, alice, room)
	if want != names[alice] && want != names[bob] {
		t.Fatalf("the name resolved to %q", want)
	}
	for _, u := range users[1:] {
		u.waitFor("the same name as "+fedA, func() bool { return stateName(ctx, u, room) == want })
	}
}
