package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/sjson"
)

// memKeys is a key database holding fixed keys.
type memKeys map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult

func (m memKeys) FetcherName() string { return "memory" }

func (m memKeys) FetchKeys(_ context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	for r := range reqs {
		if res, ok := m[r]; ok {
			out[r] = res
		}
	}
	return out, nil
}

func (m memKeys) StoreKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	return nil
}

type testSigner struct {
	server string
	keyID  gomatrixserverlib.KeyID
	key    ed25519.PrivateKey
}

func newTestSigner(t *testing.T, server string, keys memKeys) testSigner {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner{server: server, keyID: "ed25519:k1", key: priv}
	if keys != nil {
		keys[gomatrixserverlib.PublicKeyLookupRequest{ServerName: spec.ServerName(server), KeyID: s.keyID}] = gomatrixserverlib.PublicKeyLookupResult{
			VerifyKey: gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(pub)}, ValidUntilTS: spec.AsTimestamp(time.Now().Add(time.Hour)),
			ExpiredTS: gomatrixserverlib.PublicKeyNotExpired,
		}
	}
	return s
}

// buildEvent builds and signs an event of a room (its room ID is filled
// in; room version 12's create event has none).
func buildEvent(t *testing.T, impl gomatrixserverlib.IRoomVersion, by testSigner, roomID, sender, evType string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	data, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	proto := gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: roomID, Type: evType, StateKey: stateKey,
		PrevEvents: []string{}, AuthEvents: []string{}, Content: data, Depth: 3}
	if impl.DomainlessRoomIDs() {
		proto.AuthEvents = []string{"$" + roomID[1:]}
	}
	ev, err := impl.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), spec.ServerName(by.server), by.keyID, by.key)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// The checks of a send_join answer agree with the library's, event by
// event: the same ID, the same verdict on the signatures, the same
// redaction of an event whose content hash is wrong.
func TestCheckAnswerEventMatchesLibrary(t *testing.T) {
	keys := memKeys{}
	remote := newTestSigner(t, "remote.test", keys)
	other := newTestSigner(t, "other.test", keys)
	forger := newTestSigner(t, "remote.test", nil) // remote's key ID, another key
	unknown := newTestSigner(t, "remote.test", nil)
	unknown.keyID = "ed25519:unknown"
	ring := &gomatrixserverlib.KeyRing{KeyDatabase: keys}
	ctx := context.Background()
	sk := func(s string) *string { return &s }

	for _, version := range []gomatrixserverlib.RoomVersion{"1", "3", "4", "10", "12"} {
		impl := gomatrixserverlib.MustGetRoomVersion(version)
		roomID := "!room:remote.test"
		if impl.DomainlessRoomIDs() {
			roomID = "!" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		}
		rita, olga := "@rita:remote.test", "@olga:other.test"
		name := buildEvent(t, impl, remote, roomID, rita, "m.room.name", sk(""), map[string]string{"name": "Salon"})
		invite := buildEvent(t, impl, remote, roomID, rita, spec.MRoomMember, sk(olga), map[string]string{"membership": "invite"})
		restricted := buildEvent(t, impl, other, roomID, olga, spec.MRoomMember, sk(olga),
			map[string]string{"membership": "join", "join_authorised_via_users_server": rita})
		cases := []verifyCase{
			{"signed", name.JSON(), true},
			{"content changed: redacted, still signed", must(sjson.SetBytes(name.JSON(), "content.name", "Autre")), true},
			{"signed field changed", must(sjson.SetBytes(name.JSON(), "origin_server_ts", 1)), false},
			{"forged signature", name.Sign("remote.test", forger.keyID, forger.key).JSON(), false},
			{"unknown key only", buildEvent(t, impl, unknown, roomID, rita, "m.room.topic", sk(""), map[string]string{"topic": "x"}).JSON(), false},
			{"not signed by the sender's server", buildEvent(t, impl, other, roomID, rita, "m.room.topic", sk(""), map[string]string{"topic": "x"}).JSON(), false},
			{"invite without the invitee's server", invite.JSON(), false},
			{"invite signed by both", invite.Sign(other.server, other.keyID, other.key).JSON(), true},
		}
		if version == "10" || version == "12" { // restricted joins: from room version 8
			cases = append(cases,
				verifyCase{"restricted join without the authorising server", restricted.JSON(), false},
				verifyCase{"restricted join signed by both", restricted.Sign(remote.server, remote.keyID, remote.key).JSON(), true})
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("v%s/%s", version, c.name), func(t *testing.T) {
				lib, err := impl.NewEventFromUntrustedJSON(c.raw)
				if err != nil {
					t.Fatal(err)
				}
				libErr := gomatrixserverlib.VerifyEventSignatures(ctx, lib, ring, userIDForSender)
				if (libErr == nil) != c.ok {
					t.Fatalf("the library says %v, the case says ok=%v", libErr, c.ok)
				}
				got, err := checkAnswer(ctx, impl, newKeyBatch(ring), c.raw)
				if (err == nil) != c.ok {
					t.Fatalf("checkAnswerEvent: %v, want ok=%v", err, c.ok)
				}
				if err != nil {
					return
				}
				if got.id != lib.EventID() {
					t.Fatalf("ID %s, the library's %s", got.id, lib.EventID())
				}
				if got.pdu.Redacted() != lib.Redacted() || string(got.pdu.JSON()) != string(lib.JSON()) {
					t.Fatalf("redacted %v, the library's %v", got.pdu.Redacted(), lib.Redacted())
				}
			})
		}
	}
}

// checkAnswer reads and verifies one event as a join does.
func checkAnswer(ctx context.Context, impl gomatrixserverlib.IRoomVersion, keys *keyBatch, raw []byte) (*answerEvent, error) {
	ev, err := parseAnswerEvent(ctx, impl, keys, raw)
	if err != nil {
		return nil, err
	}
	return ev, verifyAnswerSignatures(ctx, impl, keys, []*answerEvent{ev})
}

// checkAnswerOf reads and verifies an answer's events as a join does.
func checkAnswerOf(ctx context.Context, roomID string, impl gomatrixserverlib.IRoomVersion, keys *keyBatch, state, chain []json.RawMessage) ([]*answerEvent, error) {
	evs, err := parseAnswerEvents(ctx, roomID, impl, keys, state, chain)
	if err != nil {
		return nil, err
	}
	return evs, verifyAnswerSignatures(ctx, impl, keys, evs)
}

type verifyCase struct {
	name string
	raw  []byte
	ok   bool
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// An answer is refused whole when one event fails, and events of another
// room or given twice are handled: the first refused, the second checked
// once and kept as state.
func TestCheckAnswerEvents(t *testing.T) {
	keys := memKeys{}
	remote := newTestSigner(t, "remote.test", keys)
	impl := gomatrixserverlib.MustGetRoomVersion("10")
	batch := newKeyBatch(&gomatrixserverlib.KeyRing{KeyDatabase: keys})
	ctx := context.Background()
	roomID, rita := "!room:remote.test", "@rita:remote.test"
	var state []json.RawMessage
	for i := range 20 {
		key := fmt.Sprint("k", i)
		state = append(state, buildEvent(t, impl, remote, roomID, rita, "m.test", &key, map[string]int{"n": i}).JSON())
	}
	chain := []json.RawMessage{state[3], state[5]}
	evs, err := checkAnswerOf(ctx, roomID, impl, batch, state, chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(state) {
		t.Fatalf("%d events, want %d (the auth chain's are in the state)", len(evs), len(state))
	}
	for _, ev := range evs {
		if !ev.state {
			t.Fatalf("%s is not marked as state", ev.id)
		}
	}
	bad := append([]json.RawMessage{}, state...)
	bad[7] = must(sjson.SetBytes(state[7], "depth", 99))
	if _, err := checkAnswerOf(ctx, roomID, impl, batch, bad, nil); err == nil {
		t.Fatal("an answer with a badly signed event was accepted")
	}
	if _, err := checkAnswerOf(ctx, "!elsewhere:remote.test", impl, batch, state, nil); err == nil {
		t.Fatal("events of another room were accepted")
	}
}
