package clientapi

import (
	"sort"
	"strconv"

	"github.com/chappe-matrix/chappe/internal/httputil"
)

// specVersions are the spec versions whose client-server endpoints that
// clients negotiate on (login, register, rooms, sync) Chappe serves.
var specVersions = []string{"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10"}

func (c *ClientAPI) versions(*httputil.Request) (any, error) {
	return map[string]any{
		"versions": specVersions,
		// Element X uses sliding sync (syncapi/sliding.go) when it sees this.
		"unstable_features": map[string]bool{"org.matrix.simplified_msc3575": true},
	}, nil
}

func (c *ClientAPI) wellKnown(*httputil.Request) (any, error) {
	return map[string]any{
		"m.homeserver": map[string]string{"base_url": c.cfg.BaseURL()},
		// Element's E2EE settings (config e2ee:).
		"io.element.e2ee": map[string]bool{
			"secure_backup_required": c.cfg.E2EE.SecureBackupRequired,
			"default":                c.cfg.E2EE.Default,
		},
	}, nil
}

func (c *ClientAPI) capabilities(*httputil.Request) (any, error) {
	available := map[string]string{}
	for v := 1; v <= 12; v++ {
		available[strconv.Itoa(v)] = "stable"
	}
	keys := make([]string, 0, len(available))
	for k := range available {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Capabilities not yet served are advertised as disabled, so that
	// clients hide the action rather than fail on it.
	return map[string]any{
		"capabilities": map[string]any{
			"m.room_versions":   map[string]any{"default": c.cfg.Rooms.DefaultVersion, "available": available},
			"m.change_password": map[string]bool{"enabled": true},
			"m.set_displayname": map[string]bool{"enabled": true},
			"m.set_avatar_url":  map[string]bool{"enabled": true},
			"m.3pid_changes":    map[string]bool{"enabled": false},
			"m.get_login_token": map[string]bool{"enabled": true},
			"m.profile_fields":  map[string]bool{"enabled": true},
		},
	}, nil
}
