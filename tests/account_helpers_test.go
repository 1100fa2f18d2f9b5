package tests

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
)

// passwordAuth is an m.login.password auth dict for user-interactive auth.
func passwordAuth(session, user, password string) string {
	auth := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user},
		"password":   password,
	}
	if session != "" {
		auth["session"] = session
	}
	data, _ := json.Marshal(auth)
	return string(data)
}

// wantUIA checks a 401 user-interactive-auth challenge and returns its session.
func wantUIA(t *testing.T, resp rawResponse, errcode string, stages ...string) string {
	t.Helper()
	if resp.status != 401 {
		t.Fatalf("want a 401 challenge, got %d %v", resp.status, resp.body)
	}
	if got, _ := resp.body["errcode"].(string); got != errcode {
		t.Fatalf("challenge errcode = %q, want %q: %v", got, errcode, resp.body)
	}
	flows, _ := resp.body["flows"].([]any)
	if len(flows) == 0 {
		t.Fatalf("no flows: %v", resp.body)
	}
	got, _ := flows[0].(map[string]any)["stages"].([]any)
	if len(got) != len(stages) {
		t.Fatalf("stages = %v, want %v", got, stages)
	}
	for i := range stages {
		if got[i] != stages[i] {
			t.Fatalf("stages = %v, want %v", got, stages)
		}
	}
	if _, ok := resp.body["params"].(map[string]any); !ok {
		t.Fatalf("no params: %v", resp.body)
	}
	session, _ := resp.body["session"].(string)
	if session == "" {
		t.Fatalf("no session: %v", resp.body)
	}
	return session
}

// loginAgain logs the user in on a new device.
func loginAgain(t *testing.T, cli *mautrix.Client, password string) *mautrix.Client {
	t.Helper()
	other, err := mautrix.NewClient(cli.HomeserverURL.String(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	must[*mautrix.RespLogin](t)(other.Login(ctxT(t), &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: cli.UserID.String()},
		Password:         password,
		StoreCredentials: true,
	}))
	return other
}
