package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Room upgrades, the space hierarchy and content reports.

const (
	defaultHierarchyLimit = 50
	maxHierarchyLimit     = 100
	maxHierarchyDepth     = 100
	maxReportReasonBytes  = 2048
)

func (c *ClientAPI) upgradeRoom(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	var body struct {
		NewVersion string `json:"new_version"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.NewVersion == "" {
		return nil, mxerr.MissingParam("new_version is required")
	}
	if len(body.NewVersion) > 32 {
		return nil, mxerr.UnsupportedRoomVersion("room version %q is not supported", body.NewVersion[:32])
	}
	return roomserver.UpgradeRoom.Call(req.Context(), c.bus, &roomserver.UpgradeRoomRequest{
		Sender: req.Device.UserID, RoomID: roomID, NewVersion: body.NewVersion,
	})
}

func (c *ClientAPI) hierarchy(req *httputil.Request) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	r := &roomserver.QueryHierarchyRequest{UserID: req.Device.UserID, RoomID: roomID, MaxDepth: -1}
	if q.Get("max_depth") != "" {
		if r.MaxDepth, err = queryLimit(req, "max_depth", 0, maxHierarchyDepth); err != nil {
			return nil, err
		}
	}
	if r.Limit, err = queryLimit(req, "limit", defaultHierarchyLimit, maxHierarchyLimit); err != nil {
		return nil, err
	}
	if r.Limit == 0 {
		return nil, mxerr.InvalidParam("limit must be positive")
	}
	from, err := parsePosToken("from", "h", q.Get("from"))
	if err != nil {
		return nil, err
	}
	if from > 1<<20 {
		return nil, mxerr.InvalidParam("from: token out of range")
	}
	r.From = int(from)
	if r.SuggestedOnly, err = queryBool(req, "suggested_only"); err != nil {
		return nil, err
	}
	resp, err := roomserver.QueryHierarchy.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"rooms": resp.Rooms}
	if resp.NextPos > 0 {
		out["next_batch"] = formatPosToken("h", int64(resp.NextPos))
	}
	return out, nil
}

func (c *ClientAPI) reportEvent(req *httputil.Request) (any, error) {
	eventID, err := eventIDParam(req)
	if err != nil {
		return nil, err
	}
	return c.report(req, eventID)
}

func (c *ClientAPI) reportRoom(req *httputil.Request) (any, error) {
	return c.report(req, "")
}

func (c *ClientAPI) report(req *httputil.Request, eventID string) (any, error) {
	roomID, err := roomIDParam(req)
	if err != nil {
		return nil, err
	}
	var body struct {
		Reason string `json:"reason"`
		Score  *int   `json:"score"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if len(body.Reason) > maxReportReasonBytes {
		return nil, mxerr.InvalidParam("reason is longer than %d bytes", maxReportReasonBytes)
	}
	_, err = roomserver.Report.Call(req.Context(), c.bus, &roomserver.ReportRequest{
		UserID: req.Device.UserID, RoomID: roomID, EventID: eventID, Reason: body.Reason, Score: body.Score,
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
