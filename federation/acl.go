package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// checkServerACL refuses (403 M_FORBIDDEN) a server the room's
// m.room.server_acl denies. A room without one, or unknown here, allows.
func (f *Federation) checkServerACL(ctx context.Context, roomID, server string) error {
	if f.reader == nil {
		return nil
	}
	ev, err := f.reader.CurrentState(ctx, roomID, "m.room.server_acl", "")
	if err != nil {
		return fmt.Errorf("read server ACL of %s: %w", roomID, err)
	}
	if ev == nil {
		return nil
	}
	var pdu struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(ev.JSON, &pdu); err != nil {
		return fmt.Errorf("server ACL event of %s: %w", roomID, err)
	}
	if !serverACLAllows(pdu.Content, server) {
		return mxerr.Forbidden("server %s is denied by the server ACL of %s", server, roomID)
	}
	return nil
}

// serverACLAllows applies an m.room.server_acl content to a server name,
// in the order the spec gives: IP literals when allow_ip_literals is
// false, then deny, then allow, else deny. The port is ignored. Malformed
// fields take their defaults (allow_ip_literals true, lists empty), and
// entries that are not strings are skipped.
func serverACLAllows(content json.RawMessage, server string) bool {
	var acl map[string]json.RawMessage
	if json.Unmarshal(content, &acl) != nil {
		acl = nil // an unreadable content is an empty one: allow nothing
	}
	host, _, _ := spec.ParseAndValidateServerName(spec.ServerName(server))
	if host == "" {
		host = server
	}
	var allowIPLiterals bool
	if json.Unmarshal(acl["allow_ip_literals"], &allowIPLiterals) != nil {
		allowIPLiterals = true
	}
	if !allowIPLiterals && net.ParseIP(strings.Trim(host, "[]")) != nil {
		return false
	}
	if matchesAnyGlob(acl["deny"], host) {
		return false
	}
	return matchesAnyGlob(acl["allow"], host)
}

// matchesAnyGlob tells whether host matches one of the string globs of a
// JSON array (case-insensitive).
func matchesAnyGlob(list json.RawMessage, host string) bool {
	var entries []json.RawMessage
	if json.Unmarshal(list, &entries) != nil {
		return false
	}
	host = strings.ToLower(host)
	for _, e := range entries {
		var glob string
		if json.Unmarshal(e, &glob) == nil && globMatch(strings.ToLower(glob), host) {
			return true
		}
	}
	return false
}

// globMatch is the spec's glob-style matching: * is any run of
// characters (possibly empty), ? exactly one. Iterative with one
// backtrack point: no recursion, at worst len(pattern)*len(s) steps.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
