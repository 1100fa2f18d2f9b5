package tests

import (
	"encoding/json"
	"strconv"
	"testing"

	"maunium.net/go/mautrix"
)

// ssResponse is a simplified sliding sync response, as Element X reads it.
type ssResponse struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[string]*ssRoom `json:"rooms"`
	Extensions struct {
		AccountData *struct {
			Global []json.RawMessage            `json:"global"`
			Rooms  map[string][]json.RawMessage `json:"rooms"`
		} `json:"account_data"`
		Receipts *struct {
			Rooms map[string]json.RawMessage `json:"rooms"`
		} `json:"receipts"`
		Typing *struct {
			Rooms map[string]json.RawMessage `json:"rooms"`
		} `json:"typing"`
	} `json:"extensions"`
}

type ssEvent struct {
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key"`
	Sender   string          `json:"sender"`
	EventID  string          `json:"event_id"`
	Content  json.RawMessage `json:"content"`
}

type ssRoom struct {
	Name          *string   `json:"name"`
	Initial       bool      `json:"initial"`
	Expanded      bool      `json:"expanded_timeline"`
	RequiredState []ssEvent `json:"required_state"`
	Timeline      []ssEvent `json:"timeline"`
	PrevBatch     string    `json:"prev_batch"`
	Limited       bool      `json:"limited"`
	NumLive       *int      `json:"num_live"`
	JoinedCount   *int      `json:"joined_count"`
	InvitedCount  *int      `json:"invited_count"`
	BumpStamp     int64     `json:"bump_stamp"`
	Heroes        []struct {
		UserID string `json:"user_id"`
	} `json:"heroes"`
	InviteState []json.RawMessage `json:"invite_state"`
	Membership  string            `json:"membership"`
	Lists       []string          `json:"lists"`
}

// hasState says whether required_state holds (type, stateKey).
func (r *ssRoom) hasState(typ, stateKey string) bool {
	for _, ev := range r.RequiredState {
		if ev.Type == typ && ev.StateKey != nil && *ev.StateKey == stateKey {
			return true
		}
	}
	return false
}

// elementXRequiredState is the room list's required_state of Element X
// (matrix-rust-sdk's room list service).
var elementXRequiredState = [][2]string{
	{"m.room.name", ""}, {"m.room.encryption", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"},
	{"m.room.topic", ""}, {"m.room.canonical_alias", ""}, {"m.room.power_levels", ""},
	{"org.matrix.msc3401.call.member", "*"}, {"m.room.join_rules", ""}, {"m.room.tombstone", ""},
	{"m.room.create", ""}, {"m.room.history_visibility", ""}, {"io.element.functional_members", ""},
	{"m.space.parent", "*"}, {"m.room.avatar", ""},
}

// slidingSync posts a request to the unstable endpoint; pos and timeout
// go in the query string, as Element X sends them.
func slidingSync(t *testing.T, c *mautrix.Client, pos string, timeoutMS int, body map[string]any) (*ssResponse, error) {
	t.Helper()
	q := map[string]string{}
	if pos != "" {
		q["pos"] = pos
	}
	if timeoutMS >= 0 {
		q["timeout"] = strconv.Itoa(timeoutMS)
	}
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"unstable", "org.matrix.simplified_msc3575", "sync"}, q)
	var resp ssResponse
	_, err := c.MakeRequest(ctxT(t), "POST", u, body, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

func mustSliding(t *testing.T, c *mautrix.Client, pos string, timeoutMS int, body map[string]any) *ssResponse {
	t.Helper()
	resp, err := slidingSync(t, c, pos, timeoutMS, body)
	if err != nil {
		t.Fatalf("sliding sync: %v", err)
	}
	return resp
}

// elementXBody is the shape of Element X's room list request.
func elementXBody(ranges [][2]int, subs map[string]any) map[string]any {
	body := map[string]any{
		"conn_id": "room-list",
		"lists": map[string]any{
			"all_rooms": map[string]any{
				"ranges":         ranges,
				"timeline_limit": 1,
				"required_state": elementXRequiredState,
				"filters":        map[string]any{"not_room_types": []string{"m.space"}},
			},
		},
		"extensions": map[string]any{
			"account_data": map[string]any{"enabled": true},
			"receipts":     map[string]any{"enabled": true, "rooms": []string{"*"}, "lists": []string{"all_rooms"}},
			"typing":       map[string]any{"enabled": true, "rooms": []string{"*"}, "lists": []string{"all_rooms"}},
		},
	}
	if subs != nil {
		body["room_subscriptions"] = subs
	}
	return body
}
