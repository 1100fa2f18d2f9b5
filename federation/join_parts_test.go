package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// bigAnswer builds the state of a room of version 10 (create, power
// levels, then n state events, some near the 64 KB limit of an event),
// with depths that do not follow the auth events, as send_join's JSON.
func bigAnswer(t *testing.T, by testSigner, n int) (raw []byte, state []gomatrixserverlib.PDU) {
	t.Helper()
	impl := gomatrixserverlib.MustGetRoomVersion("10")
	roomID, rita := "!big:remote.test", "@rita:remote.test"
	build := func(evType, key string, depth int64, auth []string, content any) gomatrixserverlib.PDU {
		data, _ := json.Marshal(content)
		proto := gomatrixserverlib.ProtoEvent{SenderID: rita, RoomID: roomID, Type: evType, StateKey: &key,
			PrevEvents: []string{}, AuthEvents: auth, Content: data, Depth: depth}
		ev, err := impl.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), spec.ServerName(by.server), by.keyID, by.key)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	create := build(spec.MRoomCreate, "", 50, []string{}, map[string]string{"room_version": "10"})
	power := build(spec.MRoomPowerLevels, "", 40, []string{create.EventID()}, map[string]any{"users": map[string]int{rita: 100}})
	state = []gomatrixserverlib.PDU{power, create}
	for i := range n {
		content := map[string]any{"n": i}
		if i%500 == 7 {
			content["filler"] = strings.Repeat("x", 60000)
		}
		state = append(state, build("m.test", fmt.Sprint("k", i), int64(i%30), []string{create.EventID(), power.EventID()}, content))
	}
	var b bytes.Buffer
	b.WriteString(`{"origin":"remote.test","auth_chain":[`)
	b.Write(create.JSON())
	b.WriteString(`,`)
	b.Write(power.JSON())
	b.WriteString(`],"state":[`)
	for i, ev := range state {
		if i > 0 {
			b.WriteString(",")
		}
		b.Write(ev.JSON())
	}
	b.WriteString(`]}`)
	return b.Bytes(), state
}

// A big answer goes to the roomserver in messages under NATS's default
// 1 MB limit, every event once, each after its auth events.
func TestJoinAnswerInParts(t *testing.T) {
	keys := memKeys{}
	remote := newTestSigner(t, "remote.test", keys)
	raw, state := bigAnswer(t, remote, 3000)
	answer, err := readSendJoinAnswer(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(answer.State) != len(state) || len(answer.AuthChain) != 2 || !bytes.Equal(answer.State[5], state[5].JSON()) {
		t.Fatalf("read %d state and %d auth chain events", len(answer.State), len(answer.AuthChain))
	}
	impl := gomatrixserverlib.MustGetRoomVersion("10")
	ctx := context.Background()
	batch := newKeyBatch(&gomatrixserverlib.KeyRing{KeyDatabase: keys})
	evs, err := checkAnswerOf(ctx, "!big:remote.test", impl, batch, answer.State, answer.AuthChain)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(state) {
		t.Fatalf("%d distinct events, want %d", len(evs), len(state))
	}
	c := &checkedJoin{version: "10", impl: impl, keys: batch, join: state[0], events: evs}
	parts := splitParts(answerAuthOrder(evs))
	if len(parts) < 4 {
		t.Fatalf("%d parts for %d bytes", len(parts), len(raw))
	}
	seen := map[string]bool{}
	for i, part := range parts {
		data, err := json.Marshal(partRequest(c, part, 12345, i < len(parts)-1))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) >= 1<<20 {
			t.Fatalf("part %d is %d bytes", i, len(data))
		}
		for _, ev := range part {
			for _, a := range ev.pdu.AuthEventIDs() {
				if !seen[a] {
					t.Fatalf("%s comes before its auth event %s", ev.id, a)
				}
			}
			if seen[ev.id] || !ev.state {
				t.Fatalf("%s twice or not as state", ev.id)
			}
			seen[ev.id] = true
		}
	}
	if len(seen) != len(state) {
		t.Fatalf("%d events sent, want %d", len(seen), len(state))
	}
}
