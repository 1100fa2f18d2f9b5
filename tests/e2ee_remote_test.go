package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// /keys/query and /keys/claim for users of other servers go to the
// federation component's bus endpoints, one call per server, merged with
// the local answer; a server that fails, or a federation that nobody
// serves (disabled here), shows in "failures" and fails nothing else.
func TestE2EERemoteKeys(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	keys, _ := signedDeviceKeys(t, alice.UserID.String(), alice.DeviceID.String())
	wantStatus(t, rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/upload", alice.AccessToken, `{"device_keys":`+keys+`}`), 200, "")
	const carol, dave = "@carol:remote.test", "@dave:down.test"
	query := fmt.Sprintf(`{"device_keys":{%q:[],%q:[],%q:[]}}`, alice.UserID, carol, dave)
	claim := fmt.Sprintf(`{"one_time_keys":{%q:{"CAROLDEV":"signed_curve25519"},%q:{"DAVEDEV":"signed_curve25519"}}}`, carol, dave)

	// Federation off: no process serves its endpoints.
	q := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/query", alice.AccessToken, query)
	wantStatus(t, q, 200, "")
	if fails := objectAt(q.body, "failures"); fails["remote.test"] == nil || fails["down.test"] == nil {
		t.Fatalf("failures without federation: %v", q.body)
	}
	if objectAt(q.body, "device_keys", alice.UserID.String())[alice.DeviceID.String()] == nil {
		t.Fatalf("local keys missing: %v", q.body)
	}
	c := rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/claim", alice.AccessToken, claim)
	wantStatus(t, c, 200, "")
	if fails := objectAt(c.body, "failures"); fails["remote.test"] == nil || fails["down.test"] == nil {
		t.Fatalf("claim failures without federation: %v", c.body)
	}

	// A federation answering on the bus: remote.test answers, down.test
	// fails. Each call must carry one server's users.
	oneServer := func(users []string) (string, error) {
		server := ""
		for _, u := range users {
			s := mxid.ServerOf(u)
			if server != "" && s != server {
				return "", fmt.Errorf("one call for %s and %s", server, s)
			}
			server = s
		}
		return server, nil
	}
	unreachable := json.RawMessage(`{"errcode":"M_UNKNOWN","error":"down.test is unreachable"}`)
	err := fedapi.QueryKeys.Serve(srv.Base.Bus, func(_ context.Context, req *fedapi.QueryKeysRequest) (*fedapi.QueryKeysResponse, error) {
		users := make([]string, 0, len(req.DeviceKeys))
		for u := range req.DeviceKeys {
			users = append(users, u)
		}
		server, err := oneServer(users)
		if err != nil {
			return nil, err
		}
		if server == "down.test" {
			return &fedapi.QueryKeysResponse{Failures: map[string]json.RawMessage{server: unreachable}}, nil
		}
		return &fedapi.QueryKeysResponse{
			DeviceKeys: map[string]map[string]json.RawMessage{carol: {"CAROLDEV": json.RawMessage(`{"user_id":"@carol:remote.test","device_id":"CAROLDEV"}`)}},
			MasterKeys: map[string]json.RawMessage{carol: json.RawMessage(`{"user_id":"@carol:remote.test","usage":["master"]}`)},
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = fedapi.ClaimKeys.Serve(srv.Base.Bus, func(_ context.Context, req *fedapi.ClaimKeysRequest) (*fedapi.ClaimKeysResponse, error) {
		users := make([]string, 0, len(req.OneTimeKeys))
		for u := range req.OneTimeKeys {
			users = append(users, u)
		}
		server, err := oneServer(users)
		if err != nil {
			return nil, err
		}
		if server == "down.test" {
			return &fedapi.ClaimKeysResponse{Failures: map[string]json.RawMessage{server: unreachable}}, nil
		}
		return &fedapi.ClaimKeysResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{
			carol: {"CAROLDEV": {"signed_curve25519:AAAA": json.RawMessage(`{"key":"k"}`)}},
		}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	q = rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/query", alice.AccessToken, query)
	wantStatus(t, q, 200, "")
	fails := objectAt(q.body, "failures")
	if len(fails) != 1 || !strings.Contains(fmt.Sprint(fails["down.test"]), "unreachable") {
		t.Fatalf("failures: %v", fails)
	}
	if objectAt(q.body, "device_keys", carol)["CAROLDEV"] == nil || objectAt(q.body, "master_keys")[carol] == nil {
		t.Fatalf("remote keys not merged: %v", q.body)
	}
	if objectAt(q.body, "device_keys", alice.UserID.String())[alice.DeviceID.String()] == nil {
		t.Fatalf("local keys missing: %v", q.body)
	}
	c = rawRequest(t, "POST", srv.URL+"/_matrix/client/v3/keys/claim", alice.AccessToken, claim)
	wantStatus(t, c, 200, "")
	if fails := objectAt(c.body, "failures"); len(fails) != 1 || fails["down.test"] == nil {
		t.Fatalf("claim failures: %v", fails)
	}
	if objectAt(c.body, "one_time_keys", carol, "CAROLDEV")["signed_curve25519:AAAA"] == nil {
		t.Fatalf("claimed remote key missing: %v", c.body)
	}
}

// objectAt walks a decoded JSON body down the keys given; a missing or
// non-object step gives an empty map.
func objectAt(body map[string]any, keys ...string) map[string]any {
	cur := body
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return map[string]any{}
		}
		cur = next
	}
	return cur
}
