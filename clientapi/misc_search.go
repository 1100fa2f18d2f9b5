package clientapi

import (
	"strconv"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/roomserver"
)

// Limits on a /search request's filter lists.
const (
	maxSearchFilterItems = 100
	defaultSearchLimit   = 10
	defaultSearchContext = 5
)

type searchRequest struct {
	SearchCategories struct {
		RoomEvents *roomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm *string  `json:"search_term"`
	Keys       []string `json:"keys"`
	Filter     *struct {
		roomserver.EventFilter
		Rooms    []string `json:"rooms"`
		NotRooms []string `json:"not_rooms"`
		Limit    *int     `json:"limit"`
	} `json:"filter"`
	OrderBy      string `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    *struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

// search serves the room_events category (the only one the spec has):
// the roomserver matches the term over its search index (message bodies,
// room names and topics) in the rooms the user is joined to.
func (c *ClientAPI) search(req *httputil.Request) (any, error) {
	var body searchRequest
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	crit := body.SearchCategories.RoomEvents
	if crit == nil {
		// No category asked: nothing to search, and nothing to answer.
		return map[string]any{"search_categories": map[string]any{}}, nil
	}
	sreq, err := searchParams(req, crit)
	if err != nil {
		return nil, err
	}
	resp, err := roomserver.SearchRoomEvents.Call(req.Context(), c.bus, sreq)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"count":      resp.Count,
		"highlights": resp.Highlights,
	}
	results := make([]map[string]any, 0, len(resp.Results))
	for _, r := range resp.Results {
		item := map[string]any{"rank": r.Rank, "result": r.Event}
		if r.Context != nil {
			ctx := map[string]any{
				"events_before": r.Context.EventsBefore, "events_after": r.Context.EventsAfter,
				"start": formatPosToken("s", r.Context.StartPos), "end": formatPosToken("s", r.Context.EndPos),
			}
			if r.Context.ProfileInfo != nil {
				ctx["profile_info"] = r.Context.ProfileInfo
			}
			item["context"] = ctx
		}
		results = append(results, item)
	}
	out["results"] = results
	switch {
	case resp.NextPos > 0:
		out["next_batch"] = "r" + strconv.FormatInt(resp.NextPos, 10)
	case resp.NextOffset > 0:
		out["next_batch"] = "k" + strconv.Itoa(resp.NextOffset)
	}
	if groups := searchGroups(crit, resp.Results); groups != nil {
		out["groups"] = groups
	}
	if crit.IncludeState {
		state := map[string]any{}
		for _, r := range resp.Results {
			if _, done := state[r.Event.RoomID]; done {
				continue
			}
			st, err := roomserver.QueryState.Call(req.Context(), c.bus, &roomserver.QueryStateRequest{UserID: req.Device.UserID, RoomID: r.Event.RoomID})
			if err != nil {
				return nil, err
			}
			state[r.Event.RoomID] = st.Events
		}
		out["state"] = state
	}
	return map[string]any{"search_categories": map[string]any{"room_events": out}}, nil
}

// searchParams validates the criteria and the next_batch parameter.
func searchParams(req *httputil.Request, crit *roomEventsCriteria) (*roomserver.SearchRoomEventsRequest, error) {
	if crit.SearchTerm == nil || strings.TrimSpace(*crit.SearchTerm) == "" {
		return nil, mxerr.MissingParam("search_term is required")
	}
	sreq := &roomserver.SearchRoomEventsRequest{UserID: req.Device.UserID, Term: *crit.SearchTerm, Limit: defaultSearchLimit}
	for _, k := range crit.Keys {
		switch k {
		case roomserver.SearchKeyBody, roomserver.SearchKeyName, roomserver.SearchKeyTopic:
			sreq.Keys = append(sreq.Keys, k)
		default:
			return nil, mxerr.InvalidParam("unknown search key %q (content.body, content.name or content.topic)", truncate(k, 100))
		}
	}
	switch crit.OrderBy {
	case "", roomserver.SearchOrderRank:
		sreq.OrderBy = roomserver.SearchOrderRank
	case roomserver.SearchOrderRecent:
		sreq.OrderBy = roomserver.SearchOrderRecent
	default:
		return nil, mxerr.InvalidParam("order_by must be rank or recent")
	}
	if f := crit.Filter; f != nil {
		if len(f.Rooms)+len(f.NotRooms)+len(f.Types)+len(f.NotTypes)+len(f.Senders)+len(f.NotSenders) > maxSearchFilterItems {
			return nil, mxerr.InvalidParam("the filter lists more than %d items", maxSearchFilterItems)
		}
		ef := f.EventFilter
		sreq.Filter, sreq.Rooms, sreq.NotRooms = &ef, f.Rooms, f.NotRooms
		if f.Limit != nil {
			if *f.Limit < 1 {
				return nil, mxerr.InvalidParam("filter.limit must be positive")
			}
			sreq.Limit = *f.Limit // the roomserver caps it
		}
	}
	if ec := crit.EventContext; ec != nil {
		sreq.BeforeLimit, sreq.AfterLimit, sreq.IncludeProfile = defaultSearchContext, defaultSearchContext, ec.IncludeProfile
		if ec.BeforeLimit != nil {
			sreq.BeforeLimit = *ec.BeforeLimit
		}
		if ec.AfterLimit != nil {
			sreq.AfterLimit = *ec.AfterLimit
		}
		if sreq.BeforeLimit < 0 || sreq.AfterLimit < 0 {
			return nil, mxerr.InvalidParam("event_context limits must not be negative")
		}
	}
	if g := crit.Groupings; g != nil {
		for _, k := range g.GroupBy {
			if k.Key != "room_id" && k.Key != "sender" {
				return nil, mxerr.InvalidParam("groupings can be by room_id or sender")
			}
		}
	}
	if nb := req.URL.Query().Get("next_batch"); nb != "" {
		bad := mxerr.InvalidParam("next_batch: malformed token")
		n, err := strconv.ParseInt(nb[1:], 10, 64)
		switch {
		case err != nil || n <= 0:
			return nil, bad
		case nb[0] == 'r' && sreq.OrderBy == roomserver.SearchOrderRecent:
			sreq.BeforePos = n
		case nb[0] == 'k' && sreq.OrderBy == roomserver.SearchOrderRank && n < 1<<20:
			sreq.Offset = int(n)
		default:
			return nil, bad
		}
	}
	return sreq, nil
}

// searchGroups groups this page's results by room or sender, as asked;
// group order is first appearance (so the best-ranked group comes first).
func searchGroups(crit *roomEventsCriteria, results []roomserver.SearchResult) map[string]any {
	if crit.Groupings == nil || len(crit.Groupings.GroupBy) == 0 {
		return nil
	}
	groups := map[string]any{}
	for _, by := range crit.Groupings.GroupBy {
		byKey := map[string]map[string]any{}
		for _, r := range results {
			k := r.Event.RoomID
			if by.Key == "sender" {
				k = r.Event.Sender
			}
			g, ok := byKey[k]
			if !ok {
				g = map[string]any{"order": len(byKey) + 1, "results": []string{}}
				byKey[k] = g
			}
			g["results"] = append(g["results"].([]string), r.Event.EventID)
		}
		groups[by.Key] = byKey
	}
	return groups
}
