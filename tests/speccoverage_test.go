package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/specschema"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// specDir is the matrix-spec checkout, beside the repository (tests run
// in tests/, so the repository's parent is two levels up).
const specDir = "../../shared/matrix-spec"

func specOperations(t *testing.T) []specschema.Operation {
	t.Helper()
	ops, err := specschema.Operations(specDir)
	if err != nil {
		t.Skipf("matrix-spec not found beside the repository: %v", err)
	}
	return ops
}

// notSpecRoute is true for routes the client-server spec does not cover:
// operators' endpoints, Synapse's admin API, discovery files, and
// unstable (MSC) endpoints.
func notSpecRoute(pattern string) bool {
	_, path := specschema.SplitPattern(pattern)
	return path == "/health" || path == "/metrics" ||
		strings.HasPrefix(path, "/_synapse/admin/") ||
		strings.HasPrefix(path, "/.well-known/") ||
		strings.Contains(path, "/unstable/")
}

// Every route the server registers is an operation of the spec, so a typo
// in a path, a parameter or a version prefix does not go unnoticed.
func TestRoutesAreInTheSpec(t *testing.T) {
	ops := specOperations(t)
	srv := testserver.New(t)
	for _, pattern := range srv.Base.Router.Patterns() {
		if notSpecRoute(pattern) {
			continue
		}
		if method, _ := specschema.SplitPattern(pattern); method == "" {
			t.Errorf("route %q has no method; the spec gives each operation one", pattern)
			continue
		}
		// A spec path that ends in "/" is also served without it, as
		// clients (mautrix) ask for it.
		if !specschema.InSpec(pattern, ops) && !specschema.InSpec(pattern+"/{$}", ops) {
			t.Errorf("route %q is not an operation of the client-server spec", pattern)
		}
	}
}

// Every operation the coverage table calls implemented answers through
// its handler, not the router's M_UNRECOGNIZED: the table matches
// patterns to spec paths, this proves real requests reach the handlers.
func TestImplementedOperationsAreRouted(t *testing.T) {
	ops := specOperations(t)
	srv := testserver.New(t)
	routes := specschema.NewRoutes(srv.Base.Router.Patterns())
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}))
	sent := must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, "hello"))
	params := map[string]string{
		"roomId": string(room.RoomID), "roomIdOrAlias": string(room.RoomID), "eventId": string(sent.EventID),
		"userId": string(alice.UserID), "deviceId": string(alice.DeviceID), "roomAlias": "#coverage:localhost",
		"eventType": "m.room.topic", "stateKey": "", "type": "org.chappe.test", "tag": "u.test",
		"filterId": "0", "version": "1", "kind": "override", "ruleId": ".m.rule.master",
		"receiptType": "m.read", "relType": "m.reference", "serverName": "localhost", "mediaId": "none",
		"fileName": "f.txt",
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		// SSO and media redirects point elsewhere: the first answer is
		// what counts.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	called := 0
	for i, op := range ops {
		patterns, m := routes.Serves(op)
		if m == specschema.NoMatch {
			continue
		}
		paths := []string{op.Path}
		if m == specschema.Partial {
			// Only the routes' fixed values of the parameter are served.
			paths = paths[:0]
			for _, p := range patterns {
				_, path := specschema.SplitPattern(p)
				paths = append(paths, strings.TrimSuffix(path, "{$}"))
			}
		}
		token := alice.AccessToken
		if endsSession(op.OperationID) {
			token = srv.RegisterUser(t, fmt.Sprintf("throwaway%d", i)).AccessToken
		}
		for j, path := range paths {
			called++
			target := srv.URL + fillPath(path, params, fmt.Sprintf("txn%d-%d", i, j))
			if op.Method == http.MethodGet {
				target += "?timeout=0" // long-polls answer at once
			}
			status, errcode := callOperation(t, client, op.Method, target, token)
			if (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) && errcode == "M_UNRECOGNIZED" {
				t.Errorf("%s (%s %s): %d M_UNRECOGNIZED, but the coverage table says it is implemented", op.OperationID, op.Method, path, status)
			}
		}
	}
	t.Logf("made %d requests to implemented operations", called)
}

// endsSession lists operations that could end the caller's session; they
// run as a throwaway user so the others keep a valid token.
func endsSession(operationID string) bool {
	switch operationID {
	case "logout", "logout_all", "deactivateAccount", "changePassword", "deleteDevice", "deleteDevices":
		return true
	}
	return false
}

// fillPath puts plausible values in the parameters of a spec path or a
// route pattern's path.
func fillPath(path string, params map[string]string, txnID string) string {
	var b strings.Builder
	for {
		start := strings.IndexByte(path, '{')
		if start < 0 {
			b.WriteString(path)
			return b.String()
		}
		end := strings.IndexByte(path[start:], '}') + start
		name := strings.TrimSuffix(path[start+1:end], "...") // ServeMux's {rest...}
		value, ok := params[name]
		switch {
		case name == "txnId":
			value = txnID
		case !ok:
			value = "x"
		}
		b.WriteString(path[:start])
		b.WriteString(url.PathEscape(value))
		path = path[end+1:]
	}
}

func callOperation(t *testing.T, client *http.Client, method, target, token string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	var e struct {
		Errcode string `json:"errcode"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(data, &e) // not every answer is JSON (media)
	return resp.StatusCode, e.Errcode
}

// Every route of the federation listener is an operation of the
// server-server spec.
func TestFederationRoutesAreInTheSpec(t *testing.T) {
	ops, err := specschema.OperationsOf(specDir, specschema.ServerServerDir)
	if err != nil {
		t.Skipf("matrix-spec not found beside the repository: %v", err)
	}
	srv := testserver.NewFederation(t, fedA)[0]
	patterns := srv.Federation.Patterns()
	if len(patterns) < 30 {
		t.Fatalf("only %d federation routes: %v", len(patterns), patterns)
	}
	for _, pattern := range patterns {
		// The key endpoint with a key ID was dropped from the spec;
		// older servers still ask it.
		if _, path := specschema.SplitPattern(pattern); strings.Contains(path, "/unstable/") || path == "/_matrix/key/v2/server/{keyID}" {
			continue
		}
		if !specschema.InSpec(pattern, ops) {
			t.Errorf("federation route %q is not an operation of the server-server spec", pattern)
		}
	}
}
