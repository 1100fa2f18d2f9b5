package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Room aliases and the public room directory.

const maxPublicRoomsLimit = 500

func (c *ClientAPI) setAlias(req *httputil.Request) (any, error) {
	alias, err := aliasParam(req)
	if err != nil {
		return nil, err
	}
	var body struct {
		RoomID string `json:"room_id"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.RoomID == "" {
		return nil, mxerr.MissingParam("room_id is required")
	}
	if !mxid.RoomID(body.RoomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", body.RoomID)
	}
	_, err = roomserver.SetAlias.Call(req.Context(), c.bus, &roomserver.SetAliasRequest{
		UserID: req.Device.UserID, Alias: alias, RoomID: body.RoomID,
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) getAlias(req *httputil.Request) (any, error) {
	alias, err := aliasParam(req)
	if err != nil {
		return nil, err
	}
	return roomserver.ResolveAlias.Call(req.Context(), c.bus, &roomserver.ResolveAliasRequest{Alias: alias})
}

func (c *ClientAPI) deleteAlias(req *httputil.Request) (any, error) {
	alias, err := aliasParam(req)
	if err != nil {
		return nil, err
	}
	if _, err := roomserver.DeleteAlias.Call(req.Context(), c.bus, &roomserver.DeleteAliasRequest{UserID: req.Device.UserID, Alias: alias}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) roomAliases(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	return roomserver.QueryAliases.Call(req.Context(), c.bus, &roomserver.QueryAliasesRequest{UserID: req.Device.UserID, RoomID: roomID})
}

// getVisibility needs no access token, as the spec says.
func (c *ClientAPI) getVisibility(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	return roomserver.QueryVisibility.Call(req.Context(), c.bus, &roomserver.RoomRequest{RoomID: roomID})
}

func (c *ClientAPI) setVisibility(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	var body struct {
		Visibility string `json:"visibility"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.Visibility != roomserver.VisibilityPublic && body.Visibility != roomserver.VisibilityPrivate {
		return nil, mxerr.InvalidParam("visibility must be public or private")
	}
	_, err = roomserver.SetVisibility.Call(req.Context(), c.bus, &roomserver.SetVisibilityRequest{
		UserID: req.Device.UserID, RoomID: roomID, Visibility: body.Visibility,
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// publicRoomsGet is GET /publicRooms (no access token needed).
func (c *ClientAPI) publicRoomsGet(req *httputil.Request) (any, error) {
	limit, err := queryLimit(req, "limit", 0, maxPublicRoomsLimit)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	return c.publicRooms(req, q.Get("server"), &roomserver.PublicRoomsRequest{Limit: limit, Since: q.Get("since")})
}

// publicRoomsPost is POST /publicRooms, with a filter.
func (c *ClientAPI) publicRoomsPost(req *httputil.Request) (any, error) {
	var body roomserver.PublicRoomsQuery
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	r, err := body.Request(maxPublicRoomsLimit)
	if err != nil {
		return nil, err
	}
	return c.publicRooms(req, req.URL.Query().Get("server"), r)
}

func (c *ClientAPI) publicRooms(req *httputil.Request, server string, r *roomserver.PublicRoomsRequest) (any, error) {
	if server != "" && server != c.cfg.ServerName {
		return c.remotePublicRooms(req, server, r) // profile_remote.go
	}
	resp, err := roomserver.PublicRooms.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	return resp, nil
}
