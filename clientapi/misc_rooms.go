package clientapi

import (
	"encoding/base64"
	"slices"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// maxMutualRooms is one page of /mutual_rooms.
const maxMutualRooms = 100

// roomSummary serves MSC3266's summary of a local room. via names servers
// to ask for a remote room; without federation they are not used.
func (c *ClientAPI) roomSummary(req *httputil.Request) (any, error) {
	target := req.PathValue("roomIdOrAlias")
	if !mxid.RoomID(target) && !mxid.RoomAlias(target) {
		return nil, mxerr.InvalidParam("%q is not a room ID or alias", truncate(target, 300))
	}
	sreq := &roomserver.QueryRoomSummaryRequest{RoomIDOrAlias: target}
	if req.Device != nil {
		sreq.UserID = req.Device.UserID
	}
	resp, err := roomserver.QueryRoomSummary.Call(req.Context(), c.bus, sreq)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// mutualRooms lists the rooms both users are joined to, in room ID order.
// The from token is the last room ID of the previous page: stable while
// rooms come and go, and never expires.
func (c *ClientAPI) mutualRooms(req *httputil.Request) (any, error) {
	q := req.URL.Query()
	other := q.Get("user_id")
	if other == "" || !mxid.UserID(other) || other == req.Device.UserID {
		return nil, mxerr.InvalidParam("user_id must be another user's ID")
	}
	var after string
	if from := q.Get("from"); from != "" {
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || !mxid.RoomID(string(raw)) {
			return nil, mxerr.InvalidParam("from: invalid token")
		}
		after = string(raw)
	}
	joined := []string{roomserver.MembershipJoin}
	mine, err := roomserver.QueryRoomsOfUser.Call(req.Context(), c.bus, &roomserver.QueryRoomsOfUserRequest{UserID: req.Device.UserID, Memberships: joined})
	if err != nil {
		return nil, err
	}
	theirs, err := roomserver.QueryRoomsOfUser.Call(req.Context(), c.bus, &roomserver.QueryRoomsOfUserRequest{UserID: other, Memberships: joined})
	if err != nil {
		return nil, err
	}
	theirSet := make(map[string]bool, len(theirs.Rooms))
	for _, r := range theirs.Rooms {
		theirSet[r.RoomID] = true
	}
	var shared []string
	for _, r := range mine.Rooms {
		if theirSet[r.RoomID] {
			shared = append(shared, r.RoomID)
		}
	}
	slices.Sort(shared)
	out := map[string]any{"count": len(shared)}
	page := []string{}
	for _, id := range shared {
		if id <= after {
			continue
		}
		if len(page) == maxMutualRooms {
			out["next_batch"] = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1]))
			break
		}
		page = append(page, id)
	}
	out["joined"] = page
	return out, nil
}

// reportUser stores a report about a user for the server's moderators.
func (c *ClientAPI) reportUser(req *httputil.Request) (any, error) {
	userID, err := profileUserParam(req)
	if err != nil {
		return nil, err
	}
	var body struct {
		Reason *string `json:"reason"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.Reason == nil {
		return nil, mxerr.MissingParam("reason is required (it may be empty)")
	}
	_, err = userapi.ReportUser.Call(req.Context(), c.bus, &userapi.ReportUserRequest{
		Reporter: req.Device.UserID, UserID: userID, Reason: *body.Reason,
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
