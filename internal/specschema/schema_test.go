package specschema

import (
	"strings"
	"testing"
)

const specDir = "../../../shared/matrix-spec"

func newTestValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := NewValidator(specDir)
	if err != nil {
		t.Skipf("matrix-spec not available: %v", err)
	}
	return v
}

func TestValidateFollowsRefs(t *testing.T) {
	v := newTestValidator(t)
	good := `{"versions":["v1.11"],"unstable_features":{"x":true}}`
	if err := v.Validate("getVersions", 200, []byte(good)); err != nil {
		t.Fatalf("valid /versions refused: %v", err)
	}
	if err := v.Validate("getVersions", 200, []byte(`{"versions":"v1.11"}`)); err == nil {
		t.Fatal("versions as a string accepted")
	}
	// The error bodies are a $ref to definitions/errors/error.yaml.
	if err := v.Validate("getTokenOwner", 401, []byte(`{"errcode":"M_UNKNOWN_TOKEN","error":"x"}`)); err != nil {
		t.Fatalf("valid error refused: %v", err)
	}
	if err := v.Validate("getTokenOwner", 401, []byte(`{"error":"x"}`)); err == nil {
		t.Fatal("error without errcode accepted")
	}
	// Room events: a $ref through definitions to event-schemas.
	state := `[{"type":"m.room.create","state_key":"","content":{},"event_id":"$a","room_id":"!r:x","sender":"@a:x","origin_server_ts":1,"unsigned":{}}]`
	if err := v.Validate("getRoomState", 200, []byte(state)); err != nil {
		t.Fatalf("valid state refused: %v", err)
	}
	if err := v.Validate("getRoomState", 200, []byte(`[{"type":"m.room.create"}]`)); err == nil {
		t.Fatal("incomplete event accepted")
	}
}

// Deep inside /sync: a timeline event under a room ID key
// (patternProperties) is checked against the client event schema.
func TestValidateSync(t *testing.T) {
	v := newTestValidator(t)
	if err := v.Validate("sync", 200, []byte(`{}`)); err == nil {
		t.Fatal("sync without next_batch accepted")
	}
	event := `{"type":"m.room.message","content":{},"sender":"@a:x","origin_server_ts":1%s}`
	body := `{"next_batch":"s1","rooms":{"join":{"!r:x":{"timeline":{"limited":false,"events":[` + event + `]}}}}}`
	if err := v.Validate("sync", 200, []byte(strings.Replace(body, "%s", `,"event_id":"$e"`, 1))); err != nil {
		t.Fatalf("valid sync refused: %v", err)
	}
	if err := v.Validate("sync", 200, []byte(strings.Replace(body, "%s", "", 1))); err == nil {
		t.Fatal("timeline event without event_id accepted")
	}
}

func TestValidateUnknown(t *testing.T) {
	v := newTestValidator(t)
	if err := v.Validate("noSuchOperation", 200, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "noSuchOperation") {
		t.Fatalf("got %v", err)
	}
	if err := v.Validate("getVersions", 418, []byte(`{}`)); err == nil {
		t.Fatal("a status the spec does not give was accepted")
	}
}

func TestOperations(t *testing.T) {
	ops, err := Operations(specDir)
	if err != nil {
		t.Skipf("matrix-spec not available: %v", err)
	}
	for _, want := range []string{
		"GET /_matrix/client/versions",
		"PUT /_matrix/client/v3/rooms/{room}/send/{type}/{txn}",
		"GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}",
		"GET /.well-known/matrix/client",
		"PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}",               // empty state key, no slash
		"GET /_matrix/client/v3/profile/{userId}/displayname",                   // one keyName
		"GET /_matrix/client/r0/rooms/{roomId}/state/{eventType}/{stateKey...}", // legacy prefix
	} {
		if !InSpec(want, ops) {
			t.Errorf("%s not found in the spec", want)
		}
	}
	for _, typo := range []string{"GET /_matrix/client/v3/rooms/{roomId}/sate", "GET /_matrix/client/v1/versions", "DELETE /_matrix/client/v3/sync"} {
		if InSpec(typo, ops) {
			t.Errorf("%s found in the spec", typo)
		}
	}
	routes := NewRoutes([]string{
		"GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey...}",
		"GET /_matrix/client/v3/pushrules/{$}",
		"GET /_matrix/client/v3/profile/{userId}/avatar_url",
		"GET /_matrix/client/v3/profile/{userId}/displayname",
	})
	want := map[string]Match{"getRoomStateWithKey": Exact, "getPushRules": Exact, "getProfileField": Partial}
	for _, op := range ops {
		patterns, got := routes.Serves(op)
		if got != want[op.OperationID] {
			t.Errorf("%s %s: match %v, want %v", op.Method, op.Path, got, want[op.OperationID])
		}
		if op.OperationID == "getProfileField" && len(patterns) != 2 {
			t.Errorf("getProfileField served by %v, want both profile routes", patterns)
		}
	}
}
