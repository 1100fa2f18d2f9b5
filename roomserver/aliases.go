package roomserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// setAlias maps a new local alias to a room the user is in.
func (rs *Roomserver) setAlias(ctx context.Context, req *SetAliasRequest) (*Empty, error) {
	if err := rs.localAlias(req.Alias); err != nil {
		return nil, err
	}
	room, err := rs.knownRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	if err := rs.requireJoined(ctx, room, req.UserID); err != nil {
		return nil, err
	}
	_, err = rs.db.ExecContext(ctx, `INSERT INTO rs_aliases (alias, room_id, creator) VALUES ($1, $2, $3)`,
		req.Alias, room.id, req.UserID)
	if sqlutil.IsUniqueViolation(err) {
		return nil, mxerr.New(http.StatusConflict, "M_UNKNOWN", "room alias %s already exists", req.Alias)
	}
	if err != nil {
		return nil, fmt.Errorf("insert alias %s: %w", req.Alias, err)
	}
	return &Empty{}, nil
}

// deleteAlias removes an alias: its creator may, and so may whoever may
// change the room's canonical alias. The alias is also taken out of the
// room's m.room.canonical_alias when the user may change it; when they may
// not, the alias is deleted all the same, as the spec recommends.
func (rs *Roomserver) deleteAlias(ctx context.Context, req *DeleteAliasRequest) (*Empty, error) {
	if err := rs.localAlias(req.Alias); err != nil {
		return nil, err
	}
	var roomID, creator string
	err := rs.db.QueryRowContext(ctx, `SELECT room_id, creator FROM rs_aliases WHERE alias = $1`, req.Alias).Scan(&roomID, &creator)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mxerr.NotFound("room alias %s not found", req.Alias)
	}
	if err != nil {
		return nil, fmt.Errorf("look up alias %s: %w", req.Alias, err)
	}
	if creator != req.UserID {
		ok, err := rs.mayChangeState(ctx, roomID, req.UserID, spec.MRoomCanonicalAlias)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, mxerr.Forbidden("only the alias's creator or a room moderator may delete %s", req.Alias)
		}
	}
	if _, err := rs.db.ExecContext(ctx, `DELETE FROM rs_aliases WHERE alias = $1`, req.Alias); err != nil {
		return nil, fmt.Errorf("delete alias %s: %w", req.Alias, err)
	}
	rs.dropCanonicalAlias(ctx, roomID, req.UserID, req.Alias)
	return &Empty{}, nil
}

// dropCanonicalAlias removes alias from the room's canonical alias event,
// sent by userID; failing that (no permission) is logged only.
func (rs *Roomserver) dropCanonicalAlias(ctx context.Context, roomID, userID, alias string) {
	room, ok, err := rs.reader.room(ctx, roomID)
	if err != nil || !ok {
		return
	}
	content, err := rs.reader.stateContent(ctx, room, spec.MRoomCanonicalAlias, "")
	if err != nil || content == nil {
		return
	}
	var c map[string]any
	if json.Unmarshal(content, &c) != nil {
		return
	}
	changed := false
	if c["alias"] == alias {
		delete(c, "alias")
		changed = true
	}
	if alt, ok := c["alt_aliases"].([]any); ok {
		kept := slices.DeleteFunc(slices.Clone(alt), func(a any) bool { return a == alias })
		if len(kept) != len(alt) {
			c["alt_aliases"], changed = kept, true
		}
	}
	if !changed {
		return
	}
	empty := ""
	_, err = rs.sendEvent(ctx, &SendEventRequest{Sender: userID, RoomID: roomID, Type: spec.MRoomCanonicalAlias,
		StateKey: &empty, Content: mustJSON(c)})
	if err != nil {
		rs.log.Info("deleted alias left in the canonical alias event", "alias", alias, "room_id", roomID, "err", err)
	}
}

// queryAliases lists a room's local aliases, for its members and, in a
// world-readable room, anyone.
func (rs *Roomserver) queryAliases(ctx context.Context, req *QueryAliasesRequest) (*QueryAliasesResponse, error) {
	room, err := rs.roomFor(ctx, req.RoomID, req.UserID)
	if err != nil {
		return nil, err
	}
	if err := rs.requireViewer(ctx, room, req.UserID); err != nil {
		return nil, err
	}
	out, err := sqlutil.Strings(ctx, rs.db, `SELECT alias FROM rs_aliases WHERE room_id = $1 ORDER BY alias`, room.id)
	if err != nil {
		return nil, fmt.Errorf("aliases of %s: %w", room.id, err)
	}
	return &QueryAliasesResponse{Aliases: out}, nil
}
