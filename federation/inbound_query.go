package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

const maxPublicRoomsLimit = 500

// localUser is M_NOT_FOUND unless userID is a user ID of this server.
func (f *Federation) localUser(userID string) error {
	if !mxid.UserID(userID) || mxid.ServerOf(userID) != f.serverName {
		return mxerr.NotFound("%q is not a user of this server", userID)
	}
	return nil
}

// onQueryProfile answers a local user's public profile, or one field of
// it (absent when unset).
func (f *Federation) onQueryProfile(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	q := r.HTTP.URL.Query()
	userID, field := q.Get("user_id"), q.Get("field")
	if userID == "" {
		return nil, mxerr.MissingParam("user_id is required")
	}
	if err := f.localUser(userID); err != nil {
		return nil, err
	}
	p, err := userapi.QueryProfile.Call(ctx, f.bus, &userapi.QueryProfileRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if field != "displayname" && field != "avatar_url" {
		fields, err := userapi.QueryProfileFields.Call(ctx, f.bus, &userapi.QueryProfileRequest{UserID: userID})
		if err != nil {
			return nil, err
		}
		for k, v := range fields.Fields {
			out[k] = v
		}
	}
	if p.DisplayName != "" {
		out["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out["avatar_url"] = p.AvatarURL
	}
	if field == "" {
		return out, nil
	}
	if v, ok := out[field]; ok {
		return map[string]any{field: v}, nil
	}
	return map[string]any{}, nil
}

// onQueryDirectory resolves an alias of this server to its room and the
// servers in it.
func (f *Federation) onQueryDirectory(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	alias := r.HTTP.URL.Query().Get("room_alias")
	if alias == "" {
		return nil, mxerr.MissingParam("room_alias is required")
	}
	if !mxid.RoomAlias(alias) || mxid.ServerOf(alias) != f.serverName {
		return nil, mxerr.NotFound("room alias %s is not on this server", alias)
	}
	resolved, err := roomserver.ResolveAlias.Call(ctx, f.bus, &roomserver.ResolveAliasRequest{Alias: alias})
	if err != nil {
		return nil, err
	}
	servers, err := f.reader.JoinedServers(ctx, resolved.RoomID)
	if err != nil {
		return nil, err
	}
	// This server first: it answered, so it is the likeliest to help.
	list := []string{f.serverName}
	for _, s := range servers {
		if s != f.serverName {
			list = append(list, s)
		}
	}
	return map[string]any{"room_id": resolved.RoomID, "servers": list}, nil
}

func (f *Federation) onPublicRoomsGet(r *InboundRequest) (any, error) {
	q := r.HTTP.URL.Query()
	limit, err := intParam(q, "limit", 0)
	if err != nil {
		return nil, err
	}
	if q.Get("third_party_instance_id") != "" {
		return nil, mxerr.InvalidParam("no third-party networks on this server")
	}
	return f.publicRooms(r.HTTP.Context(), &roomserver.PublicRoomsRequest{Limit: limit, Since: q.Get("since")})
}

func (f *Federation) onPublicRoomsPost(r *InboundRequest) (any, error) {
	var body roomserver.PublicRoomsQuery
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	req, err := body.Request(maxPublicRoomsLimit)
	if err != nil {
		return nil, err
	}
	return f.publicRooms(r.HTTP.Context(), req)
}

func (f *Federation) publicRooms(ctx context.Context, req *roomserver.PublicRoomsRequest) (any, error) {
	if req.Limit < 0 {
		return nil, mxerr.InvalidParam("limit must not be negative")
	}
	req.Limit = min(req.Limit, maxPublicRoomsLimit)
	return roomserver.PublicRooms.Call(ctx, f.bus, req)
}

// onUserDevices lists a local user's devices with their keys, and the
// user's cross-signing keys. Device names are not disclosed to other
// servers.
func (f *Federation) onUserDevices(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	userID := r.HTTP.PathValue("userId")
	if err := f.localUser(userID); err != nil {
		return nil, err
	}
	keys, err := userapi.QueryKeys.Call(ctx, f.bus, &userapi.QueryKeysRequest{DeviceKeys: map[string][]string{userID: {}}})
	if err != nil {
		return nil, err
	}
	devices, err := userapi.QueryDevices.Call(ctx, f.bus, &userapi.QueryDevicesRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	list := make([]map[string]any, 0, len(devices.Devices))
	for _, d := range devices.Devices {
		entry := map[string]any{"device_id": d.DeviceID}
		if k, ok := keys.DeviceKeys[userID][d.DeviceID]; ok {
			entry["keys"] = k
		}
		list = append(list, entry)
	}
	streamID, err := f.deviceListStreamID(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"user_id": userID, "stream_id": streamID, "devices": list}
	if k, ok := keys.MasterKeys[userID]; ok {
		out["master_key"] = k
	}
	if k, ok := keys.SelfSigningKeys[userID]; ok {
		out["self_signing_key"] = k
	}
	return out, nil
}

// onUserKeysQuery answers /user/keys/query for the local users asked.
func (f *Federation) onUserKeysQuery(r *InboundRequest) (any, error) {
	var body struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if body.DeviceKeys == nil {
		return nil, mxerr.MissingParam("device_keys is required")
	}
	local := map[string][]string{}
	for user, devices := range body.DeviceKeys {
		if f.localUser(user) == nil {
			local[user] = devices
		}
	}
	keys, err := userapi.QueryKeys.Call(r.HTTP.Context(), f.bus, &userapi.QueryKeysRequest{DeviceKeys: local})
	if err != nil {
		return nil, err
	}
	// The user-signing keys are private to their owner.
	return map[string]any{
		"device_keys":       keys.DeviceKeys,
		"master_keys":       keys.MasterKeys,
		"self_signing_keys": keys.SelfSigningKeys,
	}, nil
}

// onUserKeysClaim claims one-time keys of local devices.
func (f *Federation) onUserKeysClaim(r *InboundRequest) (any, error) {
	var body struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if body.OneTimeKeys == nil {
		return nil, mxerr.MissingParam("one_time_keys is required")
	}
	local := map[string]map[string]string{}
	for user, devices := range body.OneTimeKeys {
		if f.localUser(user) == nil {
			local[user] = devices
		}
	}
	return userapi.ClaimKeys.Call(r.HTTP.Context(), f.bus, &userapi.ClaimKeysRequest{OneTimeKeys: local})
}

// onOpenIDUserInfo exchanges an OpenID token for the user it was made for.
func (f *Federation) onOpenIDUserInfo(r *InboundRequest) (any, error) {
	token := r.HTTP.URL.Query().Get("access_token")
	if token == "" {
		return nil, mxerr.MissingToken()
	}
	resp, err := userapi.QueryOpenIDToken.Call(r.HTTP.Context(), f.bus, &userapi.QueryOpenIDTokenRequest{AccessToken: token})
	if err != nil {
		return nil, err
	}
	if resp.UserID == "" {
		return nil, mxerr.New(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "unknown or expired OpenID token")
	}
	return map[string]string{"sub": resp.UserID}, nil
}

// onHierarchy is the space hierarchy seen from another server: the room
// and its children that anyone may preview (public, knockable or world
// readable), one level deep as the spec asks.
func (f *Federation) onHierarchy(r *InboundRequest) (any, error) {
	ctx := r.HTTP.Context()
	roomID := r.HTTP.PathValue("roomId")
	if err := f.checkServerACL(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	suggested := strings.EqualFold(r.HTTP.URL.Query().Get("suggested_only"), "true")
	resp, err := roomserver.QueryHierarchy.Call(ctx, f.bus, &roomserver.QueryHierarchyRequest{
		RoomID: roomID, MaxDepth: 1, Limit: 50, SuggestedOnly: suggested,
	})
	if err != nil {
		if me, ok := mxerr.As(err); ok && me.Code == "M_FORBIDDEN" {
			return nil, mxerr.NotFound("room %s is unknown or not accessible", roomID)
		}
		return nil, err
	}
	if len(resp.Rooms) == 0 {
		return nil, mxerr.NotFound("room %s is unknown or not accessible", roomID)
	}
	return map[string]any{
		"room":                  resp.Rooms[0],
		"children":              resp.Rooms[1:],
		"inaccessible_children": []string{},
	}, nil
}
