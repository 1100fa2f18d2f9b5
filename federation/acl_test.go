package federation

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

func TestServerACLRules(t *testing.T) {
	cases := []struct {
		acl    string
		server string
		want   bool
	}{
		// No allow list: nobody, not even the sender.
		{`{}`, "a.test", false},
		{`{"deny": ["evil.test"]}`, "a.test", false},
		{`{"allow": ["*"]}`, "a.test", true},
		{`{"allow": ["*"], "deny": ["evil.test"]}`, "evil.test", false},
		{`{"allow": ["*"], "deny": ["evil.test"]}`, "good.test", true},
		// Ports are ignored on the server's side.
		{`{"allow": ["*"], "deny": ["evil.test"]}`, "evil.test:8448", false},
		{`{"allow": ["good.test"]}`, "good.test:1234", true},
		// Globs: * any run (possibly empty), ? exactly one; case-insensitive.
		{`{"allow": ["*.gouv.fr"]}`, "ministere-a.gouv.fr", true},
		{`{"allow": ["*.gouv.fr"]}`, "gouv.fr", false},
		{`{"allow": ["ministere-?.gouv.fr"]}`, "ministere-b.gouv.fr", true},
		{`{"allow": ["ministere-?.gouv.fr"]}`, "ministere-bb.gouv.fr", false},
		{`{"allow": ["MINISTERE-*.GOUV.FR"]}`, "ministere-x.gouv.fr", true},
		{`{"allow": ["*"], "deny": ["*.EVIL.test"]}`, "a.evil.TEST", false},
		// Deny wins over allow.
		{`{"allow": ["a.test"], "deny": ["a.test"]}`, "a.test", false},
		// IP literals: allowed by default, denied when allow_ip_literals is false.
		{`{"allow": ["*"]}`, "1.2.3.4", true},
		{`{"allow": ["*"], "allow_ip_literals": false}`, "1.2.3.4:8448", false},
		{`{"allow": ["*"], "allow_ip_literals": false}`, "[::1]", false},
		{`{"allow": ["*"], "allow_ip_literals": false}`, "a.test", true},
		{`{"allow": ["*"], "allow_ip_literals": "no"}`, "1.2.3.4", true},
		{`{"allow": ["1.2.3.*"], "allow_ip_literals": true}`, "1.2.3.4", true},
		// Malformed fields take their defaults; non-strings are skipped.
		{`{"allow": "*"}`, "a.test", false},
		{`{"allow": [1, null, "a.test"]}`, "a.test", true},
		{`{"allow": ["*"], "deny": [{"x": 1}]}`, "a.test", true},
		{`"not an object"`, "a.test", false},
	}
	for _, c := range cases {
		if got := serverACLAllows(json.RawMessage(c.acl), c.server); got != c.want {
			t.Errorf("%s on %s: %v, want %v", c.acl, c.server, got, c.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"*a", "bbba", true},
		{"?", "", false},
		{"??", "ab", true},
		{"*.*", "a.b", true},
		{"a**b", "ab", true},
	}
	for _, c := range cases {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("%q ~ %q: %v", c.pattern, c.s, got)
		}
	}
}

// aclReader serves one room's m.room.server_acl.
type aclReader struct {
	roomserver.FederationReader
	content string // "" for no ACL
}

func (r aclReader) CurrentState(_ context.Context, roomID, eventType, stateKey string) (*roomserver.StoredPDU, error) {
	if r.content == "" || eventType != "m.room.server_acl" || stateKey != "" {
		return nil, nil
	}
	return &roomserver.StoredPDU{RoomID: roomID, JSON: json.RawMessage(`{"type":"m.room.server_acl","state_key":"","content":` + r.content + `}`)}, nil
}

func TestCheckServerACL(t *testing.T) {
	ctx := context.Background()
	f := &Federation{}
	if err := f.checkServerACL(ctx, "!r:a.test", "evil.test"); err != nil {
		t.Fatalf("no reader: %v", err)
	}
	f.reader = aclReader{}
	if err := f.checkServerACL(ctx, "!r:a.test", "evil.test"); err != nil {
		t.Fatalf("no ACL: %v", err)
	}
	f.reader = aclReader{content: `{"allow": ["*"], "deny": ["evil.test"]}`}
	if err := f.checkServerACL(ctx, "!r:a.test", "good.test"); err != nil {
		t.Fatalf("allowed server: %v", err)
	}
	err := f.checkServerACL(ctx, "!r:a.test", "evil.test:8448")
	if me, ok := mxerr.As(err); !ok || me.Status != 403 || me.Code != "M_FORBIDDEN" {
		t.Fatalf("denied server: %v", err)
	}
}
