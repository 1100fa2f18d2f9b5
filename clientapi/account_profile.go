package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/userapi"
)

// Profile fields served: the two of the spec that clients use.
const (
	fieldDisplayName = "displayname"
	fieldAvatarURL   = "avatar_url"
)

func profileUserParam(req *httputil.Request) (string, error) {
	userID := req.PathValue("userId")
	if !mxid.UserID(userID) {
		return "", mxerr.InvalidParam("%q is not a user ID", truncate(userID, 300))
	}
	return userID, nil
}

func (c *ClientAPI) getProfile(req *httputil.Request) (any, error) {
	userID, err := profileUserParam(req)
	if err != nil {
		return nil, err
	}
	if c.remoteUser(userID) {
		return c.remoteProfile(req, userID, "") // profile_remote.go
	}
	p, err := userapi.QueryProfile.Call(req.Context(), c.bus, &userapi.QueryProfileRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	// The extended fields (misc_profile.go) are part of the profile too.
	fields, err := userapi.QueryProfileFields.Call(req.Context(), c.bus, &userapi.QueryProfileRequest{UserID: userID})
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(fields.Fields)+2)
	for k, v := range fields.Fields {
		out[k] = v
	}
	if p.DisplayName != "" {
		out[fieldDisplayName] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out[fieldAvatarURL] = p.AvatarURL
	}
	return out, nil
}

// getProfileField answers one field; M_NOT_FOUND when it is not set, as
// the spec asks.
func (c *ClientAPI) getProfileField(field string) httputil.Handler {
	return func(req *httputil.Request) (any, error) {
		userID, err := profileUserParam(req)
		if err != nil {
			return nil, err
		}
		if c.remoteUser(userID) {
			return c.remoteProfile(req, userID, field)
		}
		p, err := userapi.QueryProfile.Call(req.Context(), c.bus, &userapi.QueryProfileRequest{UserID: userID})
		if err != nil {
			return nil, err
		}
		value := p.DisplayName
		if field == fieldAvatarURL {
			value = p.AvatarURL
		}
		if value == "" {
			return nil, mxerr.NotFound("%s has no %s", userID, field)
		}
		return map[string]string{field: value}, nil
	}
}

// setProfileField changes the requester's own display name or avatar and
// then their member events in every joined room, so that rooms show it.
func (c *ClientAPI) setProfileField(field string) httputil.Handler {
	return func(req *httputil.Request) (any, error) {
		userID, err := profileUserParam(req)
		if err != nil {
			return nil, err
		}
		if userID != req.Device.UserID {
			return nil, mxerr.Forbidden("you may only change your own profile")
		}
		var body map[string]*string
		if err := httputil.DecodeJSON(req.Request, &body); err != nil {
			return nil, err
		}
		value, ok := body[field]
		if !ok || value == nil {
			return nil, mxerr.MissingParam("%s is required", field)
		}
		set := &userapi.SetProfileRequest{UserID: userID}
		if field == fieldDisplayName {
			set.DisplayName = value
		} else {
			set.AvatarURL = value
		}
		if err := userapi.CheckProfile(set.DisplayName, set.AvatarURL); err != nil {
			return nil, err
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
}
