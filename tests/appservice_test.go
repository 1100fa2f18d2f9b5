package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// fakeAS is an application service: it records the transactions and pings
// it receives, and fails the first failFirst transaction requests with 500.
type fakeAS struct {
	srv *httptest.Server

	mu        sync.Mutex
	failFirst int
	requests  []asRequest // every transaction request, failed ones included
	accepted  []asRequest
	pings     []string // transaction_id of each ping
	auths     []string // Authorization headers seen
}

type asRequest struct {
	txnID  string
	events []map[string]any
}

func newFakeAS(t *testing.T, failFirst int) *fakeAS {
	f := &fakeAS{failFirst: failFirst}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/transactions/"):
		var body struct {
			Events []map[string]any `json:"events"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		req := asRequest{txnID: strings.TrimPrefix(r.URL.Path, "/_matrix/app/v1/transactions/"), events: body.Events}
		f.requests = append(f.requests, req)
		if len(f.requests) <= f.failFirst {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN"}`))
			return
		}
		f.accepted = append(f.accepted, req)
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodPost && r.URL.Path == "/_matrix/app/v1/ping":
		var body struct {
			TransactionID string `json:"transaction_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.pings = append(f.pings, body.TransactionID)
		_, _ = w.Write([]byte(`{}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_UNRECOGNIZED"}`))
	}
}

// messages lists the bodies of the m.room.message events of roomID the
// service accepted, in the order it accepted them.
func (f *fakeAS) messages(roomID id.RoomID) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.accepted {
		for _, ev := range r.events {
			if ev["type"] == "m.room.message" && ev["room_id"] == roomID.String() {
				c, _ := ev["content"].(map[string]any)
				body, _ := c["body"].(string)
				out = append(out, body)
			}
		}
	}
	return out
}

// writeRegistration writes a registration file and returns its path.
func writeRegistration(t *testing.T, id, url, asToken, hsToken, sender, userRegex string) string {
	t.Helper()
	urlLine := "url: null"
	if url != "" {
		urlLine = "url: " + url
	}
	yaml := fmt.Sprintf(`id: %s
%s
as_token: %s
hs_token: %s
sender_localpart: %s
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: '%s'
  aliases: []
  rooms: []
`, id, urlLine, asToken, hsToken, sender, userRegex)
	path := filepath.Join(t.TempDir(), id+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func withAppServices(paths ...string) testserver.Option {
	return func(c *config.Config) {
		c.AppServices = paths
		c.Registration.Enabled = true
	}
}

func TestAppServiceTransactions(t *testing.T) {
	as := newFakeAS(t, 1) // the first transaction fails: it must be sent again
	reg := writeRegistration(t, "bridge", as.srv.URL, "as-bridge-token", "hs-bridge-token", "bridgebot", "@bridge_.*")
	srv := testserver.New(t, withAppServices(reg))
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})).RoomID

	// The bot joins with the as_token, acting as its sender user.
	bot := srv.Client(t)
	bot.AccessToken = "as-bridge-token"
	who := must[*mautrix.RespWhoami](t)(bot.Whoami(ctx))
	if who.UserID.String() != "@bridgebot:"+srv.Config.ServerName {
		t.Fatalf("as_token acts as %s", who.UserID)
	}
	must[*mautrix.RespInviteUser](t)(alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: who.UserID}))
	if _, err := bot.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two", "three"} {
		if _, err := alice.SendText(ctx, room, text); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := as.messages(room)
		if strings.Join(got, ",") == "one,two,three" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service got %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, a := range as.auths {
		if a != "Bearer hs-bridge-token" {
			t.Fatalf("transaction sent with Authorization %q", a)
		}
	}
	if len(as.requests) < 2 || as.requests[0].txnID != as.requests[1].txnID {
		t.Fatalf("the failed transaction was not retried with its ID: %+v", as.requests)
	}
	seen := map[string]bool{}
	for _, r := range as.accepted {
		if seen[r.txnID] {
			t.Fatalf("transaction %s accepted twice", r.txnID)
		}
		seen[r.txnID] = true
	}
}

func TestAppServicePing(t *testing.T) {
	as := newFakeAS(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	srv := testserver.New(t, withAppServices(
		writeRegistration(t, "live", as.srv.URL, "as-live", "hs-live", "livebot", "@live_.*"),
		writeRegistration(t, "dead", deadURL, "as-dead", "hs-dead", "deadbot", "@dead_.*"),
		writeRegistration(t, "nourl", "", "as-nourl", "hs-nourl", "nourlbot", "@nourl_.*"),
	))
	url := srv.URL + "/_matrix/client/v1/appservice/%s/ping"

	resp := rawRequest(t, "POST", fmt.Sprintf(url, "live"), "as-live", `{"transaction_id":"ping-1"}`)
	if resp.status != 200 || resp.body["duration_ms"] == nil {
		t.Fatalf("ping: %d %v", resp.status, resp.body)
	}
	as.mu.Lock()
	if len(as.pings) != 1 || as.pings[0] != "ping-1" || as.auths[0] != "Bearer hs-live" {
		t.Fatalf("service saw pings %v with %v", as.pings, as.auths)
	}
	as.mu.Unlock()

	resp = rawRequest(t, "POST", fmt.Sprintf(url, "dead"), "as-dead", `{}`)
	if resp.status != 502 || resp.body["errcode"] != "M_CONNECTION_FAILED" {
		t.Fatalf("dead service: %d %v", resp.status, resp.body)
	}
	resp = rawRequest(t, "POST", fmt.Sprintf(url, "nourl"), "as-nourl", `{}`)
	if resp.status != 400 || resp.body["errcode"] != "M_URL_NOT_SET" {
		t.Fatalf("service without URL: %d %v", resp.status, resp.body)
	}
	// Another service's token, or a user's, may not ping.
	resp = rawRequest(t, "POST", fmt.Sprintf(url, "live"), "as-dead", `{}`)
	if resp.status != 403 || resp.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("other service's token: %d %v", resp.status, resp.body)
	}
	alice := srv.RegisterUser(t, "alice")
	resp = rawRequest(t, "POST", fmt.Sprintf(url, "live"), alice.AccessToken, `{}`)
	if resp.status != 403 || resp.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("user's token: %d %v", resp.status, resp.body)
	}
}

func TestAppServiceMasqueradeAndRegister(t *testing.T) {
	srv := testserver.New(t, withAppServices(
		writeRegistration(t, "bridge", "", "as-bridge", "hs-bridge", "bridgebot", "@bridge_.*"),
	))
	server := srv.Config.ServerName
	v3 := srv.URL + "/_matrix/client/v3"

	// Registration by the service: no UIA, in its namespace only.
	resp := rawRequest(t, "POST", v3+"/register", "as-bridge", `{"type":"m.login.application_service","username":"bridge_alice","inhibit_login":true}`)
	if resp.status != 200 || resp.body["user_id"] != "@bridge_alice:"+server {
		t.Fatalf("register in namespace: %d %v", resp.status, resp.body)
	}
	resp = rawRequest(t, "POST", v3+"/register", "as-bridge", `{"type":"m.login.application_service","username":"bridge_bob"}`)
	if resp.status != 200 || resp.body["access_token"] == nil || resp.body["user_id"] != "@bridge_bob:"+server {
		t.Fatalf("register with login: %d %v", resp.status, resp.body)
	}
	resp = rawRequest(t, "POST", v3+"/register", "as-bridge", `{"type":"m.login.application_service","username":"carol"}`)
	if resp.status != 400 || resp.body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("register outside namespace: %d %v", resp.status, resp.body)
	}
	resp = rawRequest(t, "POST", v3+"/register", "not-a-token", `{"type":"m.login.application_service","username":"bridge_x"}`)
	if resp.status != 401 || resp.body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Fatalf("register with a bad token: %d %v", resp.status, resp.body)
	}

	// Ordinary users may not take names in an exclusive namespace.
	resp = rawRequest(t, "POST", v3+"/register", "", `{"username":"bridge_mallory","password":"a-long-password","auth":{"type":"m.login.dummy"}}`)
	if resp.status != 400 || resp.body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("user registering in an exclusive namespace: %d %v", resp.status, resp.body)
	}
	resp = rawRequest(t, "GET", v3+"/register/available?username=bridge_mallory", "", "")
	if resp.status != 400 || resp.body["errcode"] != "M_EXCLUSIVE" {
		t.Fatalf("availability in an exclusive namespace: %d %v", resp.status, resp.body)
	}

	// Identity assertion.
	whoamiAs := func(query string) rawResponse {
		return rawRequest(t, "GET", v3+"/account/whoami"+query, "as-bridge", "")
	}
	if r := whoamiAs(""); r.status != 200 || r.body["user_id"] != "@bridgebot:"+server {
		t.Fatalf("whoami as the service: %d %v", r.status, r.body)
	}
	if r := whoamiAs("?user_id=@bridge_alice:" + server); r.status != 200 || r.body["user_id"] != "@bridge_alice:"+server {
		t.Fatalf("whoami masquerading: %d %v", r.status, r.body)
	}
	alice := srv.RegisterUser(t, "alice")
	if r := whoamiAs("?user_id=" + alice.UserID.String()); r.status != 403 || r.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("masquerading outside the namespace: %d %v", r.status, r.body)
	}
	if r := whoamiAs("?user_id=@bridge_nobody:" + server); r.status != 403 || r.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("masquerading as an unregistered user: %d %v", r.status, r.body)
	}
	if r := whoamiAs("?user_id=@bridge_alice:" + server + "&device_id=NOPE"); r.status != 400 || r.body["errcode"] != "M_UNKNOWN_DEVICE" {
		t.Fatalf("masquerading with an unknown device: %d %v", r.status, r.body)
	}
	// A user's own token ignores user_id.
	r := rawRequest(t, "GET", v3+"/account/whoami?user_id=@bridge_alice:"+server, alice.AccessToken, "")
	if r.status != 200 || r.body["user_id"] != alice.UserID.String() {
		t.Fatalf("user token with user_id: %d %v", r.status, r.body)
	}

	// A masqueraded user acts as themself: creates a room and publishes it
	// in the service's network directory.
	r = rawRequest(t, "POST", v3+"/createRoom?user_id=@bridge_alice:"+server, "as-bridge", `{"preset":"public_chat","name":"bridged"}`)
	roomID, _ := r.body["room_id"].(string)
	if r.status != 200 || roomID == "" {
		t.Fatalf("createRoom masquerading: %d %v", r.status, r.body)
	}
	members := rawRequest(t, "GET", v3+"/rooms/"+roomID+"/joined_members?user_id=@bridge_alice:"+server, "as-bridge", "")
	if joined, _ := members.body["joined"].(map[string]any); joined["@bridge_alice:"+server] == nil {
		t.Fatalf("room members: %d %v", members.status, members.body)
	}
	r = rawRequest(t, "PUT", v3+"/directory/list/appservice/irc/"+roomID+"?user_id=@bridge_alice:"+server, "as-bridge", `{"visibility":"public"}`)
	if r.status != 200 {
		t.Fatalf("publish in network directory: %d %v", r.status, r.body)
	}
	r = rawRequest(t, "PUT", v3+"/directory/list/appservice/irc/"+roomID, alice.AccessToken, `{"visibility":"public"}`)
	if r.status != 403 || r.body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("user publishing in a network directory: %d %v", r.status, r.body)
	}
	pub := rawRequest(t, "GET", v3+"/publicRooms", alice.AccessToken, "")
	if !strings.Contains(fmt.Sprint(pub.body["chunk"]), roomID) {
		t.Fatalf("published room missing from the directory: %v", pub.body)
	}
}

func TestAppServiceConfigValidation(t *testing.T) {
	a := writeRegistration(t, "one", "http://127.0.0.1:1", "tok-a", "tok-b", "bot1", "@one_.*")
	b := writeRegistration(t, "one", "http://127.0.0.1:1", "tok-a", "tok-c", "bot2", "@two_.*")
	c := writeRegistration(t, "three", "http://127.0.0.1:1", "tok-d", "tok-e", "bot3", "@three_(")
	cfg := config.Default()
	cfg.AppServices = []string{a, b, c}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("duplicate ids, tokens and a bad regex were accepted")
	}
	for _, want := range []string{"app_services:", b + ": id:", b + ": as_token:", c + ": namespaces.users[0].regex:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
