// Package mxid checks the shape of Matrix identifiers at the edges, so a
// malformed ID is answered with M_INVALID_PARAM before it reaches a
// component.
package mxid

import "strings"

// MaxLength is the spec's limit on user IDs, room aliases and IDs.
const MaxLength = 255

// split checks sigil and "localpart:domain" and returns both halves.
func split(s string, sigil byte) (local, domain string, ok bool) {
	if len(s) < 4 || len(s) > MaxLength || s[0] != sigil {
		return "", "", false
	}
	local, domain, ok = strings.Cut(s[1:], ":")
	if !ok || local == "" || !validServerName(domain) {
		return "", "", false
	}
	return local, domain, true
}

// UserID reports whether s is a user ID; historical (non-lowercase) local
// parts are accepted as the spec requires for IDs from other servers.
func UserID(s string) bool {
	local, _, ok := split(s, '@')
	if !ok {
		return false
	}
	for _, r := range local {
		if r < 0x21 || r > 0x7e || r == ':' {
			return false
		}
	}
	return true
}

// ServerOf returns the domain of a user ID, room alias or v1–v11 room ID.
func ServerOf(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return ""
}

// RoomID reports whether s looks like a room ID: "!opaque:domain" for room
// versions up to 11, "!opaque" for version 12.
func RoomID(s string) bool {
	if len(s) < 2 || len(s) > MaxLength || s[0] != '!' {
		return false
	}
	for _, r := range s[1:] {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// RoomAlias reports whether s is "#alias:domain".
func RoomAlias(s string) bool {
	_, _, ok := split(s, '#')
	return ok
}

// EventID reports whether s looks like an event ID ("$...").
func EventID(s string) bool {
	return len(s) >= 2 && len(s) <= MaxLength && s[0] == '$' && !strings.ContainsAny(s, " \t\n")
}

func validServerName(s string) bool {
	if s == "" || len(s) > MaxLength {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == ':', r == '[', r == ']':
		default:
			return false
		}
	}
	return true
}
