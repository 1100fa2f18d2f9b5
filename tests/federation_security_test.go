package tests

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// fedRequest sends a federation request to `to`, signed (X-Matrix) as
// server `origin` with key, over TLS checked against the test CA.
func fedRequest(t *testing.T, origin string, key ed25519.PrivateKey, keyID string, to *testserver.Server, method, path string, body any) (int, []byte) {
	t.Helper()
	fr := fclient.NewFederationRequest(method, spec.ServerName(origin), spec.ServerName(to.Config.ServerName), path)
	if body != nil {
		if err := fr.SetContent(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.Sign(spec.ServerName(origin), gomatrixserverlib.KeyID(keyID), key); err != nil {
		t.Fatal(err)
	}
	signed, err := fr.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	var content []byte
	if signed.Body != nil {
		if content, err = io.ReadAll(signed.Body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, "https://"+to.FederationAddr()+path, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = signed.Header.Clone()
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := fedHTTPClient(t, to).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// fedHTTPClient trusts the test CA and checks the certificate of `to`.
func fedHTTPClient(t *testing.T, to *testserver.Server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(to.Config.Federation.ExtraCAFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: to.Config.ServerName},
	}}
}

// asServer sends a request to `to` signed by the real key of `from`.
func asServer(t *testing.T, from, to *testserver.Server, method, path string, body any) (int, []byte) {
	t.Helper()
	k := from.Base.Key
	return fedRequest(t, from.Config.ServerName, k.Private, k.ID, to, method, path, body)
}

// A server outside the allow-list is refused both ways: its requests get
// M_FORBIDDEN, and nothing is asked of it or sent to it.
func TestFederationAllowListBothWays(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.NewFederationOf(t,
		testserver.FederationMember{Name: fedA},
		testserver.FederationMember{Name: fedC, Outside: true},
	)
	alice, eve := newFedUser(t, srv[0], "alice"), newFedUser(t, srv[1], "eve")
	created, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID

	// In: the outside server's signed requests are refused.
	status, body := asServer(t, srv[1], srv[0], "GET", "/_matrix/federation/v1/make_join/"+string(room)+"/"+string(eve.id())+"?ver=12", nil)
	if status != http.StatusForbidden || !bytes.Contains(body, []byte("M_FORBIDDEN")) {
		t.Fatalf("make_join from outside: %d %s", status, body)
	}
	_, err = eve.cli.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{fedA}})
	if err == nil {
		t.Fatal("a user of a server outside the allow-list joined")
	}

	// Out: nothing goes to the outside server.
	_, err = alice.cli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: eve.id()})
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = alice.cli.GetProfile(ctx, eve.id())
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = alice.cli.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: fedC})
	wantErr(t, err, "M_FORBIDDEN", 403)
	if eve.waitForInviteBriefly(room) {
		t.Fatal("the outside server received an invite")
	}
}

// waitForInviteBriefly syncs once and says whether an invite to room came.
func (u *fedUser) waitForInviteBriefly(room id.RoomID) bool {
	u.t.Helper()
	if err := u.sync(ctxT(u.t)); err != nil {
		u.t.Fatal(err)
	}
	return u.invites[room]
}

// crafted builds an event of room version 12 from sender, signed by
// origin with key, on top of prev.
func crafted(t *testing.T, origin string, key ed25519.PrivateKey, keyID string, room id.RoomID, sender string, typ string, stateKey *string, content any, prev, auth []string, depth int64) gomatrixserverlib.PDU {
	t.Helper()
	impl := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV12)
	pe := &gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: string(room), Type: typ, StateKey: stateKey,
		PrevEvents: prev, AuthEvents: auth, Depth: depth,
	}
	if err := pe.SetContent(content); err != nil {
		t.Fatal(err)
	}
	ev, err := impl.NewEventBuilderFromProtoEvent(pe).Build(time.Now(), spec.ServerName(origin), gomatrixserverlib.KeyID(keyID), key)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// sendTxn sends PDUs in transaction txnID and returns the answer's pdus
// map.
func sendTxn(t *testing.T, from, to *testserver.Server, txnID string, pdus ...json.RawMessage) map[string]map[string]string {
	t.Helper()
	txn := map[string]any{"origin": from.Config.ServerName, "origin_server_ts": time.Now().UnixMilli(), "pdus": pdus, "edus": []any{}}
	status, body := asServer(t, from, to, "PUT", "/_matrix/federation/v1/send/"+txnID, txn)
	if status != http.StatusOK {
		t.Fatalf("send: %d %s", status, body)
	}
	var resp struct {
		PDUs map[string]map[string]string `json:"pdus"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.PDUs
}

// A crafted transaction: an event with a forged signature is dropped, one
// whose content does not match its hash is kept redacted, one failing
// the auth rules is rejected; none of the bad ones reaches a client.
func TestFederationCraftedTransaction(t *testing.T) {
	ctx := ctxT(t)
	sc := newBobScene(t, ctx, "dernier message")
	srv, alice, bob, room, bKey, powerLevels := sc.srv, sc.alice, sc.bob, sc.room, sc.bKey, sc.powerLevels
	depth := sc.depth + 1
	prev, auth := []string{string(sc.last)}, sc.auth()
	msg := func(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

	// Forged: bob's message signed with a key that is not B's.
	_, wrongKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := crafted(t, fedB, wrongKey, bKey.ID, room, string(bob.id()), "m.room.message", nil, msg("forgé"), prev, auth, depth)
	// Bad hash: properly signed, then the content changed.
	honest := crafted(t, fedB, bKey.Private, bKey.ID, room, string(bob.id()), "m.room.message", nil, msg("original"), prev, auth, depth)
	var tampered map[string]any
	if err := json.Unmarshal(honest.JSON(), &tampered); err != nil {
		t.Fatal(err)
	}
	tampered["content"] = msg("falsifié")
	tamperedJSON, _ := json.Marshal(tampered)
	// Unauthorised: a user of B who never joined speaks.
	intruder := crafted(t, fedB, bKey.Private, bKey.ID, room, "@mallory:"+fedB, "m.room.message", nil, msg("intrus"), prev, []string{powerLevels}, depth)

	txnID := fmt.Sprintf("crafted%d", time.Now().UnixNano())
	results := sendTxn(t, srv[1], srv[0], txnID, forged.JSON(), tamperedJSON, intruder.JSON())
	if results[forged.EventID()]["error"] == "" {
		t.Fatalf("the forged event was not refused: %v", results)
	}
	if r, ok := results[honest.EventID()]; !ok || r["error"] != "" {
		t.Fatalf("the tampered event should be accepted redacted: %v", results)
	}
	if results[intruder.EventID()]["error"] == "" {
		t.Fatalf("the unauthorised event was not rejected: %v", results)
	}

	ev, err := alice.cli.GetEvent(ctx, room, id.EventID(honest.EventID()))
	if err != nil {
		t.Fatalf("the tampered event is not stored: %v", err)
	}
	if _, ok := ev.Content.Raw["body"]; ok {
		t.Fatalf("the tampered event kept its content: %v", ev.Content.Raw)
	}
	for _, bad := range []gomatrixserverlib.PDU{forged, intruder} {
		_, err := alice.cli.GetEvent(ctx, room, id.EventID(bad.EventID()))
		wantErr(t, err, "M_NOT_FOUND", 404)
	}
	// The same transaction again gets the same answer, nothing redone.
	if again := sendTxn(t, srv[1], srv[0], txnID, forged.JSON(), tamperedJSON, intruder.JSON()); !reflect.DeepEqual(again, results) {
		t.Fatalf("retried transaction: %v, first answer %v", again, results)
	}
	// More than 50 PDUs in one transaction is refused whole.
	many := make([]json.RawMessage, 51)
	for i := range many {
		many[i] = honest.JSON()
	}
	status, body := asServer(t, srv[1], srv[0], "PUT", "/_matrix/federation/v1/send/toomany", map[string]any{
		"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": many,
	})
	if status != http.StatusBadRequest {
		t.Fatalf("51 PDUs: %d %s", status, body)
	}

	marker := alice.send(ctx, room, "après")
	alice.waitFor("the marker", func() bool { return alice.seenEvent(room, marker) != nil })
	for _, ev := range alice.timeline[room] {
		if body, _ := ev.Content.Raw["body"].(string); body == "forgé" || body == "intrus" || body == "falsifié" {
			t.Fatalf("alice was shown %q", body)
		}
	}
}

// eventDepth asks to, as server from, for an event's depth (GET /event).
func eventDepth(t *testing.T, from, to *testserver.Server, eventID id.EventID) int64 {
	t.Helper()
	status, body := asServer(t, from, to, "GET", "/_matrix/federation/v1/event/"+string(eventID), nil)
	if status != http.StatusOK {
		t.Fatalf("event: %d %s", status, body)
	}
	var got struct {
		PDUs []struct {
			Depth int64 `json:"depth"`
		} `json:"pdus"`
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got.PDUs) != 1 {
		t.Fatalf("event answer %s: %v", body, err)
	}
	return got.PDUs[0].Depth
}

// bobScene is the set-up of the tests that craft bob's events: alice on
// A and bob on B in a public room, alice's last message seen by both.
// The tests then sign bob's events as B would (crafted) and send them to
// A themselves (sendTxn), so that B never stores them.
type bobScene struct {
	srv        []*testserver.Server
	alice, bob *fedUser
	room       id.RoomID
	last       id.EventID // alice's message: the newest event of the room
	depth      int64      // its depth
	// The auth events of bob's messages.
	powerLevels, bobMember string
	bKey                   signingkey.Key
}

func newBobScene(t *testing.T, ctx context.Context, lastBody string) *bobScene {
	t.Helper()
	srv := testserver.NewFederation(t, fedA, fedB)
	s := &bobScene{srv: srv, alice: newFedUser(t, srv[0], "alice"), bob: newFedUser(t, srv[1], "bob"), bKey: srv[1].Base.Key}
	s.room = publicRoom(t, ctx, s.alice, s.bob)
	s.last = s.alice.send(ctx, s.room, lastBody)
	s.bob.waitText(s.room, lastBody)
	state := must[mautrix.RoomStateMap](t)(s.alice.cli.State(ctx, s.room))
	s.powerLevels = string(state[event.StatePowerLevels][""].ID)
	s.bobMember = string(state[event.StateMember][string(s.bob.id())].ID)
	s.depth = eventDepth(t, srv[1], srv[0], s.last)
	return s
}

func (s *bobScene) auth() []string { return []string{s.powerLevels, s.bobMember} }
