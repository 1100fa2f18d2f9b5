package roomserver

import "github.com/chappe-matrix/chappe/internal/mxerr"

// PublicRoomsQuery is the body of POST /publicRooms, the same in the
// client-server and the server-server API.
type PublicRoomsQuery struct {
	Limit  int    `json:"limit"`
	Since  string `json:"since"`
	Filter struct {
		GenericSearchTerm string    `json:"generic_search_term"`
		RoomTypes         []*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool   `json:"include_all_networks"`
	ThirdPartyInstanceID string `json:"third_party_instance_id"`
}

// Request checks the query and turns it into the PublicRooms request, its
// limit at most maxLimit.
func (q *PublicRoomsQuery) Request(maxLimit int) (*PublicRoomsRequest, error) {
	if q.Limit < 0 {
		return nil, mxerr.InvalidParam("limit must not be negative")
	}
	if len(q.Filter.GenericSearchTerm) > 255 || len(q.Filter.RoomTypes) > 50 {
		return nil, mxerr.InvalidParam("filter is too long")
	}
	if q.ThirdPartyInstanceID != "" {
		return nil, mxerr.InvalidParam("no third-party networks on this server")
	}
	r := &PublicRoomsRequest{Limit: min(q.Limit, maxLimit), Since: q.Since, SearchTerm: q.Filter.GenericSearchTerm}
	for _, t := range q.Filter.RoomTypes {
		if t == nil {
			r.RoomTypes = append(r.RoomTypes, "") // null: rooms without a type
		} else {
			r.RoomTypes = append(r.RoomTypes, *t)
		}
	}
	return r, nil
}
