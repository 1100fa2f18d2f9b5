package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/specschema"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// The bodies the server answers match the spec's response schemas.
func TestResponsesMatchTheSpec(t *testing.T) {
	validator, err := specschema.NewValidator(specDir)
	if err != nil {
		t.Skipf("matrix-spec not found beside the repository: %v", err)
	}
	srv := testserver.New(t, func(c *config.Config) { c.Registration.Enabled = true })
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "schemas", Preset: "private_chat"}))
	sent := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, "hello"))
	v3 := srv.URL + "/_matrix/client/v3"
	tok := alice.AccessToken

	// check calls an endpoint and validates its answer as operationID's
	// response with the status it got.
	check := func(t *testing.T, operationID string, wantStatus int, method, url, token, body string) []byte {
		t.Helper()
		status, data := doRequest(t, method, url, token, body)
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			if strings.Contains(string(data), "M_UNRECOGNIZED") {
				t.Skipf("%s is not implemented", operationID)
			}
		}
		if status != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, wantStatus, data)
		}
		if err := validator.Validate(operationID, status, data); err != nil {
			t.Errorf("body does not match the spec: %v\nbody: %s", err, data)
		}
		return data
	}

	t.Run("versions", func(t *testing.T) {
		check(t, "getVersions", 200, "GET", srv.URL+"/_matrix/client/versions", "", "")
	})
	t.Run("login flows", func(t *testing.T) {
		check(t, "getLoginFlows", 200, "GET", v3+"/login", "", "")
	})
	t.Run("login", func(t *testing.T) {
		check(t, "login", 200, "POST", v3+"/login", "",
			`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"password-alice"}`)
	})
	t.Run("register", func(t *testing.T) {
		// Open registration is user-interactive: the first answer is a
		// 401 with the flows, the second completes m.login.dummy.
		data := check(t, "register", 401, "POST", v3+"/register", "", `{"username":"bob","password":"password-bob"}`)
		var flows struct {
			Session string `json:"session"`
		}
		if err := json.Unmarshal(data, &flows); err != nil {
			t.Fatal(err)
		}
		check(t, "register", 200, "POST", v3+"/register", "",
			`{"username":"bob","password":"password-bob","auth":{"type":"m.login.dummy","session":"`+flows.Session+`"}}`)
	})
	t.Run("createRoom", func(t *testing.T) {
		check(t, "createRoom", 200, "POST", v3+"/createRoom", tok, `{"name":"another"}`)
	})
	t.Run("initial sync", func(t *testing.T) {
		check(t, "sync", 200, "GET", v3+"/sync", tok, "")
	})
	t.Run("messages", func(t *testing.T) {
		check(t, "getRoomEvents", 200, "GET", v3+"/rooms/"+string(room.RoomID)+"/messages?dir=b", tok, "")
	})
	t.Run("room state", func(t *testing.T) {
		check(t, "getRoomState", 200, "GET", v3+"/rooms/"+string(room.RoomID)+"/state", tok, "")
	})
	t.Run("joined rooms", func(t *testing.T) {
		check(t, "getJoinedRooms", 200, "GET", v3+"/joined_rooms", tok, "")
	})
	t.Run("capabilities", func(t *testing.T) {
		check(t, "getCapabilities", 200, "GET", v3+"/capabilities", tok, "")
	})
	t.Run("whoami", func(t *testing.T) {
		check(t, "getTokenOwner", 200, "GET", v3+"/account/whoami", tok, "")
	})
	// Beyond the basics: reads a client makes on opening a room.
	roomURL := v3 + "/rooms/" + string(room.RoomID)
	for _, c := range []struct{ operationID, url string }{
		{"getRoomStateWithKey", roomURL + "/state/m.room.create/"},
		{"getMembersByRoom", roomURL + "/members"},
		{"getJoinedMembersByRoom", roomURL + "/joined_members"},
		{"getOneRoomEvent", roomURL + "/event/" + string(sent.EventID)},
		{"getEventContext", roomURL + "/context/" + string(sent.EventID)},
		{"getDevices", v3 + "/devices"},
		{"getUserProfile", v3 + "/profile/" + string(alice.UserID)},
		{"getPublicRooms", v3 + "/publicRooms"},
	} {
		t.Run(c.operationID, func(t *testing.T) { check(t, c.operationID, 200, "GET", c.url, tok, "") })
	}
	t.Run("unknown token", func(t *testing.T) {
		check(t, "getTokenOwner", 401, "GET", v3+"/account/whoami", "nope", "")
	})
}
