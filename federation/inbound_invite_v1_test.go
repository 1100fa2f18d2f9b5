package federation

import (
	"context"
	"encoding/json"
	"testing"
)

// The room version of an invite v1: the room's, else the create event's
// among the stripped state, else 1; only 1 and 2 pass.
func TestInviteV1Version(t *testing.T) {
	ctx := context.Background()
	create := func(version string) []json.RawMessage {
		content := `{"creator":"@a:b.test"}`
		if version != "" {
			content = `{"room_version":"` + version + `"}`
		}
		return []json.RawMessage{
			json.RawMessage(`{"type":"m.room.name","state_key":"","content":{"name":"x"}}`),
			json.RawMessage(`{"type":"m.room.create","state_key":"","sender":"@a:b.test","content":` + content + `}`),
		}
	}
	cases := []struct {
		known string // the room's version here ("": unknown)
		state []json.RawMessage
		want  string // "": refused
	}{
		{"", nil, "1"},
		{"", create(""), "1"},
		{"", create("2"), "2"},
		{"", create("10"), ""},
		{"", []json.RawMessage{json.RawMessage(`"not an event"`)}, "1"},
		{"1", nil, "1"},
		{"2", create("10"), "2"},
		{"5", nil, ""},
		{"12", create("1"), ""},
	}
	for _, c := range cases {
		f := &Federation{reader: &timestampReader{version: c.known}}
		got, err := f.inviteV1Version(ctx, tsRoom, c.state)
		if c.want == "" {
			wantMatrixErr(t, "version "+c.known, err, 400, "M_INCOMPATIBLE_ROOM_VERSION")
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("known %q, state %s: %q %v, want %q", c.known, c.state, got, err, c.want)
		}
	}
}
