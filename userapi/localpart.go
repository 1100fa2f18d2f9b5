package userapi

import (
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxUserIDBytes is the spec's limit on a whole user ID, sigil and server
// name included.
const maxUserIDBytes = 255

// ValidateLocalpart checks a localpart for a new account against the spec's
// grammar (appendices, "User Identifiers"): one or more of a-z, 0-9 and
// "-._=/+", and the full user ID "@localpart:server" at most 255 bytes. It
// returns the user ID, or M_INVALID_USERNAME.
func ValidateLocalpart(localpart, serverName string) (string, error) {
	if localpart == "" {
		return "", mxerr.InvalidUsername("the user name must not be empty")
	}
	for i := 0; i < len(localpart); i++ {
		if !isLocalpartChar(localpart[i]) {
			return "", mxerr.InvalidUsername("user names may only contain a-z, 0-9 and the characters -._=/+")
		}
	}
	userID := "@" + localpart + ":" + serverName
	if len(userID) > maxUserIDBytes {
		return "", mxerr.InvalidUsername("the user ID %s... is longer than %d bytes", userID[:32], maxUserIDBytes)
	}
	return userID, nil
}

func isLocalpartChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._=/+", c) >= 0
}

// splitUserID splits "@localpart:server". The server name is everything
// after the first colon (it may carry a port).
func splitUserID(userID string) (localpart, server string, ok bool) {
	if !strings.HasPrefix(userID, "@") {
		return "", "", false
	}
	localpart, server, ok = strings.Cut(userID[1:], ":")
	if !ok || localpart == "" || server == "" {
		return "", "", false
	}
	return localpart, server, true
}

// localUserID returns userID when it names an account of this server.
func (u *UserAPI) localUserID(userID string) (string, bool) {
	_, server, ok := splitUserID(userID)
	if !ok || server != u.serverName || len(userID) > maxUserIDBytes {
		return "", false
	}
	return userID, true
}
