package roomserver

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// QueryRoomSummary is GET /v1/room_summary (MSC3266): a room as
// summary.go describes it, plus what a client needs before joining.
// UserID is empty for an unauthenticated request.
var QueryRoomSummary = bus.Endpoint[QueryRoomSummaryRequest, RoomSummaryResponse]{Subject: "roomserver.query_room_summary"}

type QueryRoomSummaryRequest struct {
	UserID        string `json:"user_id,omitempty"`
	RoomIDOrAlias string `json:"room_id_or_alias"`
}

// RoomSummaryResponse is the spec's room summary; Membership is the
// requester's ("" when unauthenticated or never in the room).
type RoomSummaryResponse struct {
	RoomSummary
	AllowedRoomIDs []string `json:"allowed_room_ids,omitempty"`
	Encryption     string   `json:"encryption,omitempty"`
	RoomVersion    string   `json:"room_version,omitempty"`
	Membership     string   `json:"membership,omitempty"`
}

// queryRoomSummary answers M_NOT_FOUND alike for unknown rooms and rooms
// the user may not preview, so that it cannot probe for private rooms.
func (rs *Roomserver) queryRoomSummary(ctx context.Context, req *QueryRoomSummaryRequest) (*RoomSummaryResponse, error) {
	roomID := req.RoomIDOrAlias
	if strings.HasPrefix(roomID, "#") {
		resolved, err := rs.resolveAlias(ctx, &ResolveAliasRequest{Alias: roomID})
		if err != nil {
			return nil, err
		}
		roomID = resolved.RoomID
	}
	notFound := mxerr.NotFound("room %s not found", req.RoomIDOrAlias)
	room, ok, err := rs.reader.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		if domainOf(roomID) != rs.serverName {
			return nil, errFederation("room " + roomID)
		}
		return nil, notFound
	}
	if may, err := rs.mayPreview(ctx, room, req.UserID); err != nil || !may {
		if err != nil {
			return nil, err
		}
		return nil, notFound
	}
	s, err := rs.reader.summary(ctx, room)
	if err != nil {
		return nil, err
	}
	resp := &RoomSummaryResponse{RoomSummary: s, RoomVersion: string(room.version.Version())}
	if req.UserID != "" {
		if resp.Membership, err = rs.currentMembership(ctx, room.id, req.UserID); err != nil {
			return nil, err
		}
	}
	if enc, err := rs.reader.stateContent(ctx, room, spec.MRoomEncryption, ""); err != nil {
		return nil, err
	} else if enc != nil {
		var c struct {
			Algorithm string `json:"algorithm"`
		}
		if json.Unmarshal(enc, &c) == nil {
			resp.Encryption = c.Algorithm
		}
	}
	if s.JoinRule == spec.Restricted || s.JoinRule == spec.KnockRestricted {
		rules, err := rs.reader.stateContent(ctx, room, spec.MRoomJoinRules, "")
		if err != nil {
			return nil, err
		}
		var rule gomatrixserverlib.JoinRuleContent
		if json.Unmarshal(rules, &rule) == nil {
			for _, allow := range rule.Allow {
				if allow.Type == spec.MRoomMembership && allow.RoomID != "" {
					resp.AllowedRoomIDs = append(resp.AllowedRoomIDs, allow.RoomID)
				}
			}
		}
	}
	return resp, nil
}
