package roomserver

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// The public room directory: which rooms are published, and the paged,
// searchable list of them.

const (
	defaultPublicRoomsLimit = 100
	maxPublicRoomsLimit     = 500
	// maxPublishedScan bounds how many published rooms one request reads.
	maxPublishedScan = 10000
)

func publishRoom(ctx context.Context, tx *sqlutil.Tx, roomID string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO rs_published_rooms (room_id, published_ms) VALUES ($1, $2)
		ON CONFLICT (room_id) DO NOTHING`, roomID, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("publish room %s: %w", roomID, err)
	}
	return nil
}

func (rs *Roomserver) setPublished(ctx context.Context, roomID string, published bool) error {
	return rs.db.WithTx(ctx, func(tx *sqlutil.Tx) error {
		if published {
			return publishRoom(ctx, tx, roomID)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rs_published_rooms WHERE room_id = $1`, roomID); err != nil {
			return fmt.Errorf("unpublish room %s: %w", roomID, err)
		}
		return nil
	})
}

func (rs *Roomserver) isPublished(ctx context.Context, roomID string) (bool, error) {
	var n int
	err := rs.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM rs_published_rooms WHERE room_id = $1`, roomID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("directory entry of %s: %w", roomID, err)
	}
	return n > 0, nil
}

func (rs *Roomserver) queryVisibility(ctx context.Context, req *RoomRequest) (*VisibilityResponse, error) {
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	published, err := rs.isPublished(ctx, room.id)
	if err != nil {
		return nil, err
	}
	if published {
		return &VisibilityResponse{Visibility: VisibilityPublic}, nil
	}
	return &VisibilityResponse{Visibility: VisibilityPrivate}, nil
}

// setVisibility publishes or unpublishes a room: its members who may
// change its canonical alias may (as Synapse decides).
func (rs *Roomserver) setVisibility(ctx context.Context, req *SetVisibilityRequest) (*Empty, error) {
	if req.Visibility != VisibilityPublic && req.Visibility != VisibilityPrivate {
		return nil, mxerr.InvalidParam("visibility must be public or private, not %q", req.Visibility)
	}
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	ok, err := rs.mayChangeState(ctx, room.id, req.UserID, spec.MRoomCanonicalAlias)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.Forbidden("%s may not change the directory visibility of %s", req.UserID, room.id)
	}
	if err := rs.setPublished(ctx, room.id, req.Visibility == VisibilityPublic); err != nil {
		return nil, err
	}
	return &Empty{}, nil
}

// publicRooms lists the published rooms, most joined members first.
// Tokens are offsets into that order ("p<offset>"); a room joined or left
// between two pages may shift the list by one, which the spec tolerates.
func (rs *Roomserver) publicRooms(ctx context.Context, req *PublicRoomsRequest) (*PublicRoomsResponse, error) {
	limit := req.Limit
	if limit <= 0 {
		limit = defaultPublicRoomsLimit
	}
	limit = min(limit, maxPublicRoomsLimit)
	offset := 0
	if req.Since != "" {
		n, err := parseDirectoryToken(req.Since)
		if err != nil {
			return nil, err
		}
		offset = n
	}
	rooms, err := rs.publishedRooms(ctx)
	if err != nil {
		return nil, err
	}
	total := len(rooms)
	term := strings.ToLower(strings.TrimSpace(req.SearchTerm))
	rooms = slices.DeleteFunc(rooms, func(s RoomSummary) bool {
		if len(req.RoomTypes) > 0 && !slices.Contains(req.RoomTypes, s.RoomType) {
			return true
		}
		return term != "" && !matchesTerm(s, term)
	})
	sort.Slice(rooms, func(i, j int) bool {
		if rooms[i].NumJoinedMembers != rooms[j].NumJoinedMembers {
			return rooms[i].NumJoinedMembers > rooms[j].NumJoinedMembers
		}
		return rooms[i].RoomID < rooms[j].RoomID
	})
	resp := &PublicRoomsResponse{Chunk: []RoomSummary{}, TotalRoomCountEstimate: total}
	if offset < len(rooms) {
		resp.Chunk = rooms[offset:min(offset+limit, len(rooms))]
	}
	if offset+limit < len(rooms) {
		resp.NextBatch = directoryToken(offset + limit)
	}
	if offset > 0 {
		resp.PrevBatch = directoryToken(max(offset-limit, 0))
	}
	return resp, nil
}

func matchesTerm(s RoomSummary, term string) bool {
	for _, field := range []string{s.Name, s.Topic, s.CanonicalAlias, s.RoomID} {
		if strings.Contains(strings.ToLower(field), term) {
			return true
		}
	}
	return false
}

// publishedRooms summarises every published room that still exists.
func (rs *Roomserver) publishedRooms(ctx context.Context) ([]RoomSummary, error) {
	rows, err := rs.db.QueryContext(ctx, `SELECT room_id FROM rs_published_rooms ORDER BY room_id LIMIT $1`, maxPublishedScan)
	if err != nil {
		return nil, fmt.Errorf("published rooms: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan published room: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("published rooms: %w", err)
	}
	out := make([]RoomSummary, 0, len(ids))
	for _, id := range ids {
		room, ok, err := rs.reader.room(ctx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		s, err := rs.reader.summary(ctx, room)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func directoryToken(offset int) string { return "p" + strconv.Itoa(offset) }

func parseDirectoryToken(s string) (int, error) {
	digits, ok := strings.CutPrefix(s, "p")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 0 || digits[0] == '+' {
		return 0, mxerr.InvalidParam("since: malformed token %q", s)
	}
	return n, nil
}
