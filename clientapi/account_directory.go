package clientapi

import (
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// searchUserDirectory finds local users by user ID or display name.
func (c *ClientAPI) searchUserDirectory(req *httputil.Request) (any, error) {
	var body struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.SearchTerm == nil {
		return nil, mxerr.MissingParam("search_term is required")
	}
	limit := 10 // the spec's default
	if body.Limit != nil {
		if *body.Limit < 0 {
			return nil, mxerr.InvalidParam("limit must not be negative")
		}
		limit = *body.Limit
	}
	if limit == 0 {
		return map[string]any{"results": []any{}, "limited": false}, nil
	}
	resp, err := userapi.SearchUsers.Call(req.Context(), c.bus, &userapi.SearchUsersRequest{SearchTerm: *body.SearchTerm, Limit: limit})
	if err != nil {
		return nil, err
	}
	return map[string]any{"results": resp.Results, "limited": resp.Limited}, nil
}
