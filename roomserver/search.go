package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

const (
	maxSearchTermBytes = 512
	maxSearchWords     = 8
	maxSearchLimit     = 50
	maxSearchContext   = 20
	// searchScanChunk and maxSearchScan bound the index rows one request
	// reads: past them the answer stops with a next_batch.
	searchScanChunk = 200
	maxSearchScan   = 2000
)

// searchCandidate is an index row that matched every word.
type searchCandidate struct {
	nid, pos int64
	roomID   string
	rank     float64
}

func (rs *Roomserver) searchRoomEvents(ctx context.Context, req *SearchRoomEventsRequest) (*SearchRoomEventsResponse, error) {
	words, err := searchWords(req.Term)
	if err != nil {
		return nil, err
	}
	keys := req.Keys
	if len(keys) == 0 {
		keys = []string{SearchKeyBody, SearchKeyName, SearchKeyTopic}
	}
	for len(keys) < 3 { // the SQL takes exactly three keys
		keys = append(keys, keys[0])
	}
	limit := min(max(req.Limit, 1), maxSearchLimit)
	// The longest word is the most selective: SQL matches it, Go the rest.
	longest := slices.MaxFunc(words, func(a, b string) int { return len(a) - len(b) })
	pattern := "%" + escapeLike(longest) + "%"
	resp := &SearchRoomEventsResponse{Highlights: words, Results: []SearchResult{}}
	if err := rs.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM rs_search s
		JOIN rs_membership m ON m.room_nid = s.room_nid AND m.user_id = $1 AND m.membership = 'join'
		WHERE s.value LIKE $2 ESCAPE '\' AND s.search_key IN ($3, $4, $5)`,
		req.UserID, pattern, keys[0], keys[1], keys[2]).Scan(&resp.Count); err != nil {
		return nil, fmt.Errorf("count search results: %w", err)
	}
	before := req.BeforePos
	if before <= 0 || req.OrderBy == SearchOrderRank {
		before = 1 << 62
	}
	// Candidates come newest first. For order recent they are the answer
	// in order; for rank, up to maxSearchScan of them are ranked together.
	var cands []searchCandidate
	scanned := 0
	exhausted := false
	want := limit + 1
	if req.OrderBy == SearchOrderRank {
		want = maxSearchScan
	}
	for len(cands) < want && scanned < maxSearchScan {
		chunk, last, n, err := rs.searchChunk(ctx, req, words, pattern, keys, before)
		if err != nil {
			return nil, err
		}
		scanned += n
		cands = append(cands, chunk...)
		if n < searchScanChunk {
			exhausted = true
			break
		}
		before = last
	}
	if req.OrderBy == SearchOrderRank {
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].rank > cands[j].rank })
		if req.Offset > 0 {
			cands = cands[min(req.Offset, len(cands)):]
		}
	}
	consumed := 0
	for _, c := range cands {
		if len(resp.Results) == limit {
			break
		}
		consumed++
		res, ok, err := rs.searchResult(ctx, req, c)
		if err != nil {
			return nil, err
		}
		if ok {
			resp.Results = append(resp.Results, *res)
		}
	}
	switch {
	case req.OrderBy == SearchOrderRank && consumed < len(cands):
		resp.NextOffset = req.Offset + consumed
	case req.OrderBy != SearchOrderRank && consumed < len(cands):
		resp.NextPos = cands[consumed-1].pos // strictly before the last one returned
	case req.OrderBy != SearchOrderRank && !exhausted:
		resp.NextPos = before // rows below it were not read yet
	}
	return resp, nil
}

// searchChunk reads one chunk of index rows before a position and keeps
// those matching every word and the room filter. It returns the lowest
// position read and the number of rows read.
func (rs *Roomserver) searchChunk(ctx context.Context, req *SearchRoomEventsRequest, words []string, pattern string,
	keys []string, before int64) ([]searchCandidate, int64, int, error) {
	rows, err := rs.db.QueryContext(ctx, `SELECT s.event_nid, s.stream_pos, s.value, r.room_id FROM rs_search s
		JOIN rs_membership m ON m.room_nid = s.room_nid AND m.user_id = $1 AND m.membership = 'join'
		JOIN rs_rooms r ON r.room_nid = s.room_nid
		WHERE s.value LIKE $2 ESCAPE '\' AND s.search_key IN ($3, $4, $5) AND s.stream_pos < $6
		ORDER BY s.stream_pos DESC LIMIT $7`,
		req.UserID, pattern, keys[0], keys[1], keys[2], before, searchScanChunk)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []searchCandidate
	n := 0
	last := before
	for rows.Next() {
		var c searchCandidate
		var value string
		if err := rows.Scan(&c.nid, &c.pos, &value, &c.roomID); err != nil {
			return nil, 0, 0, fmt.Errorf("scan search row: %w", err)
		}
		n++
		last = c.pos
		if len(req.Rooms) > 0 && !slices.Contains(req.Rooms, c.roomID) || slices.Contains(req.NotRooms, c.roomID) {
			continue
		}
		hits := 0
		for _, w := range words {
			k := strings.Count(value, w)
			if k == 0 {
				hits = 0
				break
			}
			hits += k
		}
		if hits == 0 {
			continue
		}
		// Rank: occurrences, damped by length so that a short message
		// that is about the term beats a long one that mentions it.
		c.rank = float64(hits) / (1 + float64(len(value))/200)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("search: %w", err)
	}
	return out, last, n, nil
}

// searchResult loads a candidate; ok is false when the user may not see
// it (history visibility) or the filter rejects it.
func (rs *Roomserver) searchResult(ctx context.Context, req *SearchRoomEventsRequest, c searchCandidate) (*SearchResult, bool, error) {
	room, ok, err := rs.reader.room(ctx, c.roomID)
	if err != nil || !ok {
		return nil, false, err
	}
	rows, err := rs.db.QueryContext(ctx, eventSelect+`WHERE e.event_nid = $1 AND `+timelineEvent, c.nid)
	if err != nil {
		return nil, false, fmt.Errorf("load search result: %w", err)
	}
	stored, err := scanEvents(rows)
	if err != nil || len(stored) == 0 || stored[0].redacted {
		return nil, false, err
	}
	events, err := rs.clientEvents(ctx, room, req.UserID, stored)
	if err != nil || len(events) == 0 || !req.Filter.matches(&events[0]) {
		return nil, false, err
	}
	res := &SearchResult{Rank: c.rank, Event: events[0]}
	if req.BeforeLimit > 0 || req.AfterLimit > 0 || req.IncludeProfile {
		if res.Context, err = rs.searchContext(ctx, req, room, &stored[0]); err != nil {
			return nil, false, err
		}
	}
	return res, true, nil
}

func (rs *Roomserver) searchContext(ctx context.Context, req *SearchRoomEventsRequest, room roomInfo, target *storedEvent) (*SearchContext, error) {
	sc := &SearchContext{StartPos: target.pos - 1, EndPos: target.pos, EventsBefore: []ClientEvent{}, EventsAfter: []ClientEvent{}}
	nBefore := min(max(req.BeforeLimit, 0), maxSearchContext)
	nAfter := min(max(req.AfterLimit, 0), maxSearchContext)
	if nBefore > 0 {
		before, err := rs.reader.storedRange(ctx, room, 0, target.pos-1, nBefore, true)
		if err != nil {
			return nil, err
		}
		if len(before) > 0 {
			sc.StartPos = before[len(before)-1].pos - 1
		}
		if sc.EventsBefore, err = rs.clientEvents(ctx, room, req.UserID, before); err != nil {
			return nil, err
		}
	}
	if nAfter > 0 {
		after, err := rs.reader.storedRange(ctx, room, target.pos, 1<<62, nAfter, false)
		if err != nil {
			return nil, err
		}
		if len(after) > 0 {
			sc.EndPos = after[len(after)-1].pos
		}
		if sc.EventsAfter, err = rs.clientEvents(ctx, room, req.UserID, after); err != nil {
			return nil, err
		}
	}
	if req.IncludeProfile {
		sc.ProfileInfo = map[string]JoinedMember{}
		senders := []ClientEvent{}
		senders = append(append(append(senders, sc.EventsBefore...), sc.EventsAfter...), ClientEvent{Sender: senderOf(target)})
		for _, ev := range senders {
			if _, done := sc.ProfileInfo[ev.Sender]; done || ev.Sender == "" {
				continue
			}
			content, err := rs.reader.stateContent(ctx, room, spec.MRoomMember, ev.Sender)
			if err != nil {
				return nil, err
			}
			var m JoinedMember
			var c struct {
				DisplayName string `json:"displayname"`
				AvatarURL   string `json:"avatar_url"`
			}
			if content != nil && json.Unmarshal(content, &c) == nil {
				m = JoinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
			}
			sc.ProfileInfo[ev.Sender] = m
		}
	}
	return sc, nil
}

func senderOf(ev *storedEvent) string {
	var e struct {
		Sender string `json:"sender"`
	}
	_ = json.Unmarshal(ev.json, &e)
	return e.Sender
}

// searchWords splits the term into lower-cased words, each of which must
// appear in a result.
func searchWords(term string) ([]string, error) {
	if len(term) > maxSearchTermBytes {
		return nil, mxerr.InvalidParam("search_term is longer than %d bytes", maxSearchTermBytes)
	}
	words := strings.Fields(strings.ToLower(term))
	if len(words) == 0 {
		return nil, mxerr.MissingParam("search_term is empty")
	}
	if len(words) > maxSearchWords {
		words = words[:maxSearchWords]
	}
	return words, nil
}

// escapeLike makes LIKE's wildcards in s match themselves.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
