package roomserver

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/signingkey"
)

// forkRoom builds a room's events by hand, with explicit prev and auth
// events, so tests can make forks.
type forkRoom struct {
	t       *testing.T
	version gomatrixserverlib.IRoomVersion
	key     signingkey.Key
	roomID  string
	create  gomatrixserverlib.PDU
	now     time.Time
}

func newForkRoom(t *testing.T, version string) *forkRoom {
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	v := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(version))
	f := &forkRoom{t: t, version: v, key: key, now: time.Unix(1_700_000_000, 0)}
	if !v.DomainlessRoomIDs() {
		f.roomID = "!fork:" + testServer
	}
	content := map[string]any{"room_version": version}
	if versionNumber(v) <= 10 {
		content["creator"] = user("alice")
	}
	f.create = f.build(user("alice"), spec.MRoomCreate, "", content, nil, nil)
	if f.roomID == "" {
		f.roomID = f.create.RoomID().String()
	}
	return f
}

// build makes an event at the next timestamp; auth lists its auth events
// (the create event is added where the room version wants it).
func (f *forkRoom) build(sender, eventType, stateKey string, content any, prev, auth []gomatrixserverlib.PDU) gomatrixserverlib.PDU {
	f.t.Helper()
	f.now = f.now.Add(time.Second)
	prevIDs, authIDs := []string{}, []string{}
	depth := int64(0)
	for _, p := range prev {
		prevIDs = append(prevIDs, p.EventID())
		depth = max(depth, p.Depth())
	}
	if f.create != nil && !f.version.DomainlessRoomIDs() {
		authIDs = append(authIDs, f.create.EventID())
	}
	for _, a := range auth {
		authIDs = append(authIDs, a.EventID())
	}
	roomID := f.roomID
	if eventType == spec.MRoomCreate && f.version.DomainlessRoomIDs() {
		roomID = ""
	}
	data, err := json.Marshal(content)
	if err != nil {
		f.t.Fatal(err)
	}
	sk := stateKey
	ev, err := f.version.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: roomID, Type: eventType, StateKey: &sk, PrevEvents: prevIDs, AuthEvents: authIDs,
		Depth: depth + 1, Content: data,
	}).Build(f.now, testServer, gomatrixserverlib.KeyID(f.key.ID), f.key.Private)
	if err != nil {
		f.t.Fatalf("build %s: %v", eventType, err)
	}
	return ev
}

// forkScenario is a room where alice (creator) and bob (moderator, 50)
// share a base state, then fork.
type forkScenario struct {
	*forkRoom
	aliceJoin, pl, joinRules, bobJoin, topic gomatrixserverlib.PDU
	base                                     []gomatrixserverlib.PDU
}

func newForkScenario(t *testing.T, version string) *forkScenario {
	f := &forkScenario{forkRoom: newForkRoom(t, version)}
	alice, bob := user("alice"), user("bob")
	f.aliceJoin = f.build(alice, spec.MRoomMember, alice, map[string]string{"membership": "join"}, []gomatrixserverlib.PDU{f.create}, nil)
	users := map[string]int{bob: 50}
	if !f.version.PrivilegedCreators() {
		users[alice] = 100
	}
	f.pl = f.build(alice, spec.MRoomPowerLevels, "", map[string]any{"users": users}, []gomatrixserverlib.PDU{f.aliceJoin}, []gomatrixserverlib.PDU{f.aliceJoin})
	f.joinRules = f.build(alice, spec.MRoomJoinRules, "", map[string]string{"join_rule": "public"}, []gomatrixserverlib.PDU{f.pl}, []gomatrixserverlib.PDU{f.pl, f.aliceJoin})
	f.bobJoin = f.build(bob, spec.MRoomMember, bob, map[string]string{"membership": "join"}, []gomatrixserverlib.PDU{f.joinRules}, []gomatrixserverlib.PDU{f.pl, f.joinRules})
	f.topic = f.build(alice, spec.MRoomTopic, "", map[string]string{"topic": "T0"}, []gomatrixserverlib.PDU{f.bobJoin}, []gomatrixserverlib.PDU{f.pl, f.aliceJoin})
	f.base = []gomatrixserverlib.PDU{f.create, f.aliceJoin, f.pl, f.joinRules, f.bobJoin}
	return f
}

func (f *forkScenario) resolve(t *testing.T, a, b []gomatrixserverlib.PDU) map[stateKey]string {
	t.Helper()
	auth := append([]gomatrixserverlib.PDU{f.topic}, f.base...)
	resolved, err := resolveState(f.version, [][]gomatrixserverlib.PDU{a, b}, auth, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	out := map[stateKey]string{}
	for _, e := range resolved {
		out[keyOf(e)] = e.EventID()
	}
	return out
}

func TestStateResolutionForks(t *testing.T) {
	for v := 2; v <= 12; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newForkScenario(t, fmt.Sprint(v))
			alice, bob := user("alice"), user("bob")

			// Fork A: alice demotes bob. Fork B: bob changes the topic.
			// The power event wins, and bob's topic is then unauthorised.
			demoteUsers := map[string]int{bob: 0}
			if !f.version.PrivilegedCreators() {
				demoteUsers[alice] = 100
			}
			demote := f.build(alice, spec.MRoomPowerLevels, "", map[string]any{"users": demoteUsers},
				[]gomatrixserverlib.PDU{f.topic}, []gomatrixserverlib.PDU{f.pl, f.aliceJoin})
			bobTopic := f.build(bob, spec.MRoomTopic, "", map[string]string{"topic": "T1"},
				[]gomatrixserverlib.PDU{f.topic}, []gomatrixserverlib.PDU{f.pl, f.bobJoin})
			stateA := append([]gomatrixserverlib.PDU{demote, f.topic}, f.base[:2]...)
			stateA = append(stateA, f.joinRules, f.bobJoin)
			stateB := append([]gomatrixserverlib.PDU{bobTopic}, f.base...)
			got := f.resolve(t, stateA, stateB)
			if got[stateKey{spec.MRoomPowerLevels, ""}] != demote.EventID() {
				t.Fatalf("power levels resolved to %s, want the demotion", got[stateKey{spec.MRoomPowerLevels, ""}])
			}
			if got[stateKey{spec.MRoomTopic, ""}] != f.topic.EventID() {
				t.Fatalf("topic resolved to %s, want alice's T0 (bob was demoted)", got[stateKey{spec.MRoomTopic, ""}])
			}
			if len(got) != 6 {
				t.Fatalf("resolved state has %d keys, want 6", len(got))
			}

			// Two allowed topic changes with the same power levels: the
			// later one (origin_server_ts) wins.
			early := f.build(alice, spec.MRoomTopic, "", map[string]string{"topic": "A"},
				[]gomatrixserverlib.PDU{f.topic}, []gomatrixserverlib.PDU{f.pl, f.aliceJoin})
			late := f.build(bob, spec.MRoomTopic, "", map[string]string{"topic": "B"},
				[]gomatrixserverlib.PDU{f.topic}, []gomatrixserverlib.PDU{f.pl, f.bobJoin})
			got = f.resolve(t, append([]gomatrixserverlib.PDU{late}, f.base...), append([]gomatrixserverlib.PDU{early}, f.base...))
			if got[stateKey{spec.MRoomTopic, ""}] != late.EventID() {
				t.Fatal("the later of two allowed topics did not win")
			}

			// Cross-check with the library where it works (state res v2).
			if f.version.StateResAlgorithm() == gomatrixserverlib.StateResV2 {
				auth := append([]gomatrixserverlib.PDU{f.topic}, f.base...)
				lib, err := gomatrixserverlib.ResolveConflictsNew(f.version.Version(), [][]gomatrixserverlib.PDU{stateA, stateB}, auth,
					userIDForSender, func(string) bool { return false })
				if err != nil {
					t.Fatal(err)
				}
				ours := f.resolve(t, stateA, stateB)
				for _, e := range lib {
					if ours[keyOf(e)] != e.EventID() {
						t.Fatalf("library and ours disagree on %v", keyOf(e))
					}
				}
			}
		})
	}
}

// Room version 1 goes to the library's v1 algorithm.
func TestStateResolutionV1(t *testing.T) {
	f := newForkScenario(t, "1")
	alice := user("alice")
	a := f.build(alice, spec.MRoomTopic, "", map[string]string{"topic": "A"}, []gomatrixserverlib.PDU{f.topic}, []gomatrixserverlib.PDU{f.pl, f.aliceJoin})
	got := f.resolve(t, append([]gomatrixserverlib.PDU{a}, f.base...), append([]gomatrixserverlib.PDU{f.topic}, f.base...))
	if len(got) != 6 || got[stateKey{spec.MRoomTopic, ""}] == "" {
		t.Fatalf("v1 resolution: %v", got)
	}
}
