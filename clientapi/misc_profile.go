package clientapi

import (
	"encoding/json"
	"regexp"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// fieldTimeZone is the spec's one defined field beyond name and avatar.
const fieldTimeZone = "m.tz"

// customField is the spec's grammar for custom profile keys: namespaced
// (at least one dot), lower-case.
var customField = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// profileKeyParam validates keyName: M_KEY_TOO_LARGE past 255 bytes,
// M_INVALID_PARAM outside the spec's grammar.
func profileKeyParam(req *httputil.Request) (string, error) {
	key := req.PathValue("keyName")
	if err := userapi.CheckProfileField(key); err != nil {
		return "", err
	}
	switch {
	case key == fieldDisplayName, key == fieldAvatarURL, key == fieldTimeZone, customField.MatchString(key):
		return key, nil
	}
	return "", mxerr.InvalidParam("%q is not a profile field name (displayname, avatar_url, m.tz or a namespaced key)", key)
}

// getAnyProfileField answers one field, M_NOT_FOUND when unset.
func (c *ClientAPI) getAnyProfileField(req *httputil.Request) (any, error) {
	key, err := profileKeyParam(req)
	if err != nil {
		return nil, err
	}
	if key == fieldDisplayName || key == fieldAvatarURL {
		return c.getProfileField(key)(req)
	}
	userID, err := profileUserParam(req)
	if err != nil {
		return nil, err
	}
	if c.remoteUser(userID) {
		return c.remoteProfile(req, userID, key)
	}
	fields, err := userapi.QueryProfileFields.Call(req.Context(), c.bus, &userapi.QueryProfileRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	value, ok := fields.Fields[key]
	if !ok {
		return nil, mxerr.NotFound("%s has no %s", userID, key)
	}
	return map[string]json.RawMessage{key: value}, nil
}

// ownProfile checks that the requester changes their own profile and is
// not suspended.
func ownProfile(req *httputil.Request) (string, error) {
	userID, err := profileUserParam(req)
	if err != nil {
		return "", err
	}
	if userID != req.Device.UserID {
		return "", mxerr.Forbidden("you may only change your own profile")
	}
	return userID, refuseSuspended(req)
}

func (c *ClientAPI) setAnyProfileField(req *httputil.Request) (any, error) {
	key, err := profileKeyParam(req)
	if err != nil {
		return nil, err
	}
	userID, err := ownProfile(req)
	if err != nil {
		return nil, err
	}
	if key == fieldDisplayName || key == fieldAvatarURL {
		return c.setProfileField(key)(req) // account_profile.go: validates and propagates
	}
	var body map[string]json.RawMessage
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	value, ok := body[key]
	if !ok {
		return nil, mxerr.MissingParam("%s is required", key)
	}
	if key == fieldTimeZone {
		var tz string
		if json.Unmarshal(value, &tz) != nil {
			return nil, mxerr.BadJSON("m.tz must be a string")
		}
	}
	if len(value) > userapi.MaxProfileBytes {
		return nil, mxerr.New(400, "M_PROFILE_TOO_LARGE", "the value is over %d bytes", userapi.MaxProfileBytes)
	}
	_, err = userapi.SetProfileField.Call(req.Context(), c.bus, &userapi.SetProfileFieldRequest{UserID: userID, Field: key, Value: value})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// deleteProfileField removes a field; for displayname and avatar_url it
// clears them, and the rooms are told as for any change.
func (c *ClientAPI) deleteProfileField(req *httputil.Request) (any, error) {
	key, err := profileKeyParam(req)
	if err != nil {
		return nil, err
	}
	userID, err := ownProfile(req)
	if err != nil {
		return nil, err
	}
	if key == fieldDisplayName || key == fieldAvatarURL {
		empty := ""
		set := &userapi.SetProfileRequest{UserID: userID}
		if key == fieldDisplayName {
			set.DisplayName = &empty
		} else {
			set.AvatarURL = &empty
		}
		resp, err := userapi.SetProfile.Call(req.Context(), c.bus, set)
		if err != nil {
			return nil, err
		}
		if resp.Changed {
			c.propagateProfile(req, resp.Profile)
		}
		return struct{}{}, nil
	}
	_, err = userapi.SetProfileField.Call(req.Context(), c.bus, &userapi.SetProfileFieldRequest{UserID: userID, Field: key, Delete: true})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
