package roomserver

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Presets of /createRoom.
const (
	presetPrivate        = "private_chat"
	presetTrustedPrivate = "trusted_private_chat"
	presetPublic         = "public_chat"
)

// resolvePreset applies the spec's default: visibility public means
// public_chat, anything else private_chat.
func resolvePreset(req *CreateRoomRequest) (string, error) {
	switch req.Visibility {
	case "", "public", "private":
	default:
		return "", mxerr.InvalidParam("visibility must be public or private, not %q", req.Visibility)
	}
	switch req.Preset {
	case presetPrivate, presetTrustedPrivate, presetPublic:
		return req.Preset, nil
	case "":
		if req.Visibility == "public" {
			return presetPublic, nil
		}
		return presetPrivate, nil
	default:
		return "", mxerr.InvalidParam("unknown preset %q", req.Preset)
	}
}

// versionNumber is the room version as an integer (all versions Chappe
// creates are numbered).
func versionNumber(v gomatrixserverlib.IRoomVersion) int {
	n, _ := strconv.Atoi(string(v.Version()))
	return n
}

// createContent is creation_content with the keys the server owns:
// room_version, creator (room versions 1 to 10, where it is meaningful),
// and, for room version 12's trusted_private_chat, the invitees added to
// additional_creators as the spec recommends.
func createContent(req *CreateRoomRequest, version gomatrixserverlib.IRoomVersion, preset string, invitees []string) (json.RawMessage, error) {
	content := map[string]any{}
	if len(req.CreationContent) > 0 && string(req.CreationContent) != "null" {
		if err := json.Unmarshal(req.CreationContent, &content); err != nil {
			return nil, mxerr.BadJSON("creation_content must be a JSON object")
		}
	}
	content["room_version"] = string(version.Version())
	delete(content, "creator")
	if versionNumber(version) <= 10 {
		content["creator"] = req.Sender
	}
	if version.PrivilegedCreators() {
		creators, err := additionalCreators(content["additional_creators"])
		if err != nil {
			return nil, err
		}
		if preset == presetTrustedPrivate {
			creators = append(creators, invitees...)
		}
		creators = slices.DeleteFunc(dedupe(creators), func(u string) bool { return u == req.Sender })
		if len(creators) > 0 {
			content["additional_creators"] = creators
		} else {
			delete(content, "additional_creators")
		}
	}
	return json.Marshal(content)
}

func additionalCreators(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, mxerr.BadJSON("creation_content.additional_creators must be an array of user IDs")
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, mxerr.BadJSON("creation_content.additional_creators must be an array of user IDs")
		}
		if _, err := spec.NewUserID(s, true); err != nil {
			return nil, mxerr.InvalidParam("additional creator %q is not a valid user ID", s)
		}
		out = append(out, s)
	}
	return out, nil
}

// powerLevelsContent is the default m.room.power_levels of a new room,
// with power_level_content_override applied on top (key by key, as
// Synapse does).
//
// Room versions 1 to 11 list the creator at 100 (and, for
// trusted_private_chat, the invitees). Room version 12 lists no creator:
// creators have an infinite level implied by the create event, and the
// tombstone level must be above state_default.
func powerLevelsContent(req *CreateRoomRequest, version gomatrixserverlib.IRoomVersion, preset string, invitees []string) (json.RawMessage, error) {
	users := map[string]any{}
	if !version.PrivilegedCreators() {
		users[req.Sender] = 100
		if preset == presetTrustedPrivate {
			for _, u := range invitees {
				users[u] = 100
			}
		}
	}
	tombstone := 100
	if version.PrivilegedCreators() {
		tombstone = 150
	}
	invite := 0
	if preset == presetPublic {
		invite = 50
	}
	content := map[string]any{
		"users":         users,
		"users_default": 0,
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          tombstone,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
		},
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         invite,
		"notifications":  map[string]any{"room": 50},
	}
	if len(req.PowerLevelContentOverride) > 0 && string(req.PowerLevelContentOverride) != "null" {
		var override map[string]any
		if err := json.Unmarshal(req.PowerLevelContentOverride, &override); err != nil {
			return nil, mxerr.BadJSON("power_level_content_override must be a JSON object")
		}
		for k, v := range override {
			content[k] = v
		}
	}
	return json.Marshal(content)
}

// presetState is the state a preset implies: join rules, history
// visibility and guest access.
func presetState(preset string) []StateEvent {
	joinRule, guestAccess := "invite", "can_join"
	if preset == presetPublic {
		joinRule, guestAccess = "public", "forbidden"
	}
	return []StateEvent{
		{Type: spec.MRoomJoinRules, Content: mustJSON(map[string]string{"join_rule": joinRule})},
		{Type: spec.MRoomHistoryVisibility, Content: mustJSON(map[string]string{"history_visibility": "shared"})},
		{Type: "m.room.guest_access", Content: mustJSON(map[string]string{"guest_access": guestAccess})},
	}
}

func topicContent(topic string) json.RawMessage {
	return mustJSON(map[string]any{
		"topic":   topic,
		"m.topic": map[string]any{"m.text": []map[string]string{{"mimetype": "text/plain", "body": topic}}},
	})
}

// memberContent is an m.room.member content.
type memberContent struct {
	Membership  string `json:"membership"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
	Reason      string `json:"reason,omitempty"`
	IsDirect    bool   `json:"is_direct,omitempty"`
	// AuthorisedVia names the member who authorised a restricted join.
	AuthorisedVia string `json:"join_authorised_via_users_server,omitempty"`
}

func mustJSON(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on maps of strings and numbers
	}
	return data
}

func dedupe(list []string) []string {
	seen := make(map[string]bool, len(list))
	out := list[:0:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
