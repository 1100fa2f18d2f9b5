package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

type rawResponse struct {
	status int
	body   map[string]any
}

func rawRequest(t *testing.T, method, url, token, body string) rawResponse {
	t.Helper()
	status, data := doRequest(t, method, url, token, body)
	out := rawResponse{status: status}
	if err := json.Unmarshal(data, &out.body); err != nil {
		t.Fatalf("%s %s: response is not JSON (%d): %q", method, url, status, data)
	}
	return out
}

// doRequest makes a request and returns the status and raw body.
func doRequest(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// Every failure is a Matrix error with the spec's code and status; no
// input yields a 500.
func TestErrorsAreMatrixErrors(t *testing.T) {
	srv := testserver.New(t, func(c *config.Config) { c.ClientAPI.MaxBodyBytes = 64 * 1024 })
	alice := srv.RegisterUser(t, "alice")
	tok := alice.AccessToken
	v3 := srv.URL + "/_matrix/client/v3"
	cases := []struct {
		name, method, url, token, body, code string
		status                               int
	}{
		{"not json", "POST", v3 + "/createRoom", tok, "{nope", "M_NOT_JSON", 400},
		{"json array", "POST", v3 + "/createRoom", tok, "[1]", "M_NOT_JSON", 400},
		{"wrong field type", "POST", v3 + "/createRoom", tok, `{"name": 42}`, "M_BAD_JSON", 400},
		{"bad preset", "POST", v3 + "/createRoom", tok, `{"preset": "party"}`, "M_BAD_JSON", 400},
		{"unknown endpoint", "GET", v3 + "/no/such/thing", tok, "", "M_UNRECOGNIZED", 404},
		{"wrong method", "DELETE", v3 + "/createRoom", tok, "", "M_UNRECOGNIZED", 405},
		{"no token", "GET", v3 + "/account/whoami", "", "", "M_MISSING_TOKEN", 401},
		{"bad token", "GET", v3 + "/account/whoami", "nope", "", "M_UNKNOWN_TOKEN", 401},
		{"too large", "POST", v3 + "/createRoom", tok, `{"name":"` + strings.Repeat("a", 70*1024) + `"}`, "M_TOO_LARGE", 413},
		{"bad room id", "PUT", v3 + "/rooms/notaroom/send/m.room.message/1", tok, `{}`, "M_INVALID_PARAM", 400},
		{"unknown room", "PUT", v3 + "/rooms/!nope:localhost/send/m.room.message/1", tok, `{"body":"x"}`, "M_FORBIDDEN", 403},
		{"unsupported room version", "POST", v3 + "/createRoom", tok, `{"room_version": "99"}`, "M_UNSUPPORTED_ROOM_VERSION", 400},
		{"bad login", "POST", v3 + "/login", "", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"wrong"}`, "M_FORBIDDEN", 403},
		{"unknown login type", "POST", v3 + "/login", "", `{"type":"m.login.magic"}`, "M_UNKNOWN", 400},
		{"registration off", "POST", v3 + "/register", "", `{"username":"eve","password":"x"}`, "M_FORBIDDEN", 403},
		{"bad since", "GET", v3 + "/sync?since=garbage", tok, "", "M_INVALID_PARAM", 400},
		{"bad dir", "GET", v3 + "/rooms/!x:localhost/messages?dir=sideways", tok, "", "M_INVALID_PARAM", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := rawRequest(t, c.method, c.url, c.token, c.body)
			if resp.status != c.status || resp.body["errcode"] != c.code {
				t.Fatalf("got %d %v, want %d %s", resp.status, resp.body, c.status, c.code)
			}
			if _, ok := resp.body["error"].(string); !ok {
				t.Errorf("no error message: %v", resp.body)
			}
		})
	}
}
