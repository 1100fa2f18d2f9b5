package syncapi

import (
	"encoding/json"
	"testing"

	"github.com/chappe-matrix/chappe/roomserver"
)

func stateEv(typ, key, sender string) roomserver.ClientEvent {
	return roomserver.ClientEvent{Type: typ, StateKey: &key, Sender: sender, EventID: "$" + typ + "/" + key, Content: json.RawMessage(`{}`)}
}

// required_state as Element X sends it: wildcards, $ME and $LAZY; and the
// MSC's include/exclude form.
func TestRequiredState(t *testing.T) {
	state := []roomserver.ClientEvent{
		stateEv("m.room.create", "", alice), stateEv("m.room.name", "", alice),
		stateEv("m.room.member", alice, alice), stateEv("m.room.member", bob, bob), stateEv("m.room.member", carol, carol),
		stateEv("m.space.parent", "!a:test", alice), stateEv("m.space.parent", "!b:test", alice),
	}
	timeline := []roomserver.StreamEvent{{Event: roomserver.ClientEvent{Type: "m.room.message", Sender: bob}}}
	cases := []struct {
		raw  string
		want []string
	}{
		{`[["m.room.name",""],["m.room.member","$ME"]]`, []string{"m.room.name/", "m.room.member/" + alice}},
		{`[["m.room.member","$LAZY"]]`, []string{"m.room.member/" + bob}},
		{`[["m.space.parent","*"]]`, []string{"m.space.parent/!a:test", "m.space.parent/!b:test"}},
		{`[["*",""]]`, []string{"m.room.create/", "m.room.name/"}},
		{`[["*","*"]]`, []string{"m.room.create/", "m.room.name/", "m.room.member/" + alice, "m.room.member/" + bob,
			"m.room.member/" + carol, "m.space.parent/!a:test", "m.space.parent/!b:test"}},
		{`{"include":[{}],"exclude":[{"type":"m.room.member"}],"lazy_members":true}`, []string{"m.room.create/", "m.room.name/",
			"m.room.member/" + bob, "m.space.parent/!a:test", "m.space.parent/!b:test"}},
		{`{"include":[{"state_key":""}]}`, []string{"m.room.create/", "m.room.name/"}},
	}
	for _, c := range cases {
		st, err := parseRequiredState(json.RawMessage(c.raw), alice)
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		var got []string
		for _, ev := range st.pick(state, timeline) {
			got = append(got, ev.Type+"/"+*ev.StateKey)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s: got %v, want %v", c.raw, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%s: got %v, want %v", c.raw, got, c.want)
			}
		}
	}
	for _, bad := range []string{`[["m.room.name"]]`, `[["m.room.topic","$LAZY"]]`, `"x"`, `[1]`} {
		if _, err := parseRequiredState(json.RawMessage(bad), alice); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// Combining configs keeps what either sends.
	a, _ := parseRequiredState(json.RawMessage(`[["m.room.name",""]]`), alice)
	b, _ := parseRequiredState(json.RawMessage(`[["m.room.member","$LAZY"]]`), alice)
	u := a.union(b)
	if !u.lazy || !u.matches("m.room.name", "") || u.fingerprint() == a.fingerprint() {
		t.Fatalf("union: %+v", u)
	}
}

func TestSlidingPos(t *testing.T) {
	p := slidingPos{id: 12, stream: streamPos{Room: 3, Stream: 4, Typing: 5}}
	got, err := parseSlidingPos(p.String())
	if err != nil || got != p {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "12", ".s1", "0.s1_2_3", "x.s1", "12.t1", "12.s1_2"} {
		if _, err := parseSlidingPos(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
