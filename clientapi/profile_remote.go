package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
)

// remoteUser says whether userID belongs to another server.
func (c *ClientAPI) remoteUser(userID string) bool {
	return mxid.ServerOf(userID) != c.cfg.ServerName
}

// federationErr is what the client gets when the federation cannot be
// asked: with federation off nothing serves its endpoints (503 from the
// bus), which means other servers are out of reach.
func federationErr(err error) error {
	if me, ok := mxerr.As(err); ok && me.Status == http.StatusServiceUnavailable {
		return mxerr.Forbidden("federation is disabled on this server")
	}
	return err
}

// remoteProfile answers a remote user's profile, or one field of it
// (M_NOT_FOUND when unset), from their server.
func (c *ClientAPI) remoteProfile(req *httputil.Request, userID, field string) (any, error) {
	resp, err := fedapi.QueryProfile.Call(req.Context(), c.bus, &fedapi.QueryProfileRequest{UserID: userID, Field: field})
	if err != nil {
		return nil, federationErr(err)
	}
	if field == "" {
		return resp.Profile, nil
	}
	v, ok := resp.Profile[field]
	if !ok {
		return nil, mxerr.NotFound("%s has no %s", userID, field)
	}
	return map[string]json.RawMessage{field: v}, nil
}

// remotePublicRooms reads another server's room directory through the
// federation.
func (c *ClientAPI) remotePublicRooms(req *httputil.Request, server string, r *roomserver.PublicRoomsRequest) (any, error) {
	q := &fedapi.QueryPublicRoomsRequest{Server: server, Limit: r.Limit, Since: r.Since}
	if r.SearchTerm != "" || len(r.RoomTypes) > 0 {
		filter := map[string]any{}
		if r.SearchTerm != "" {
			filter["generic_search_term"] = r.SearchTerm
		}
		if len(r.RoomTypes) > 0 {
			types := make([]*string, len(r.RoomTypes))
			for i := range r.RoomTypes {
				if r.RoomTypes[i] != "" {
					types[i] = &r.RoomTypes[i]
				}
			}
			filter["room_types"] = types
		}
		q.Filter, _ = json.Marshal(filter)
	}
	resp, err := fedapi.QueryPublicRooms.Call(req.Context(), c.bus, q)
	if err != nil {
		return nil, federationErr(err)
	}
	return resp, nil
}
