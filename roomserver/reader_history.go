package roomserver

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// HistoryReader is what /messages needs beside EventReader to page
// through a room's history as one user may see it, across what this
// server has not stored yet. The EventReader of NewEventReader implements
// it.
type HistoryReader interface {
	// VisibleEvents keeps, in their order, the events among evs (events of
	// roomID as Events returned them) that userID may see by the spec's
	// history visibility rules: with "joined", only those from while they
	// were joined; "invited", also while invited; "shared", also those
	// before a join of theirs; "world_readable", all.
	VisibleEvents(ctx context.Context, roomID, userID string, evs []StreamEvent) ([]StreamEvent, error)
	// HistoryGaps lists, newest first, the events of roomID's timeline at
	// positions from <= pos <= to that have prev_events this server does
	// not have (the room's history before them is on other servers): the
	// join of a room joined over federation, the first event after a hole
	// /send left, the oldest event backfilled so far.
	HistoryGaps(ctx context.Context, roomID string, from, to int64) ([]HistoryGap, error)
	// HistoryOpenThrough tells, for the rooms among roomIDs whose history
	// visibility was never other than "shared" or "world_readable" and
	// that userID joined, the position through which VisibleEvents keeps
	// every event for them: their last join. The rooms left out may hide
	// events. It costs a query per 128 rooms, so that a sync of many
	// rooms learns at once which need no VisibleEvents.
	HistoryOpenThrough(ctx context.Context, userID string, roomIDs []string) (map[string]int64, error)
}

// HistoryGap is an event of the timeline whose prev_events are not
// stored.
type HistoryGap struct {
	EventID string
	Pos     int64
	// Left is how many events backfill may still place below the event
	// (input_backfill.go). At 0 what backfill brings would not be stored,
	// and the history shown stops there.
	Left int64
}

var _ HistoryReader = (*reader)(nil)

func (r *reader) VisibleEvents(ctx context.Context, roomID, userID string, evs []StreamEvent) ([]StreamEvent, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	room, ok, err := r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	positions := make([]int64, len(evs))
	for i, ev := range evs {
		positions[i] = ev.Pos
	}
	places, err := r.eventPlaces(ctx, room, positions)
	if err != nil {
		return nil, err
	}
	view := r.historyView(room, userID)
	out := make([]StreamEvent, 0, len(evs))
	for _, ev := range evs {
		place, ok := places[ev.Pos]
		if !ok {
			continue // not an event of the room's timeline
		}
		visible, err := view.canSee(ctx, place)
		if err != nil {
			return nil, err
		}
		if visible {
			out = append(out, ev)
		}
	}
	return out, nil
}

// eventPlaces reads the state snapshots around the room's timeline events
// at the given positions.
func (r *reader) eventPlaces(ctx context.Context, room roomInfo, positions []int64) (map[int64]eventPlace, error) {
	out := make(map[int64]eventPlace, len(positions))
	err := inChunks(positions, 2, int64(0), func(list string, args []any) error {
		rows, err := r.db.QueryContext(ctx, `SELECT e.stream_pos, e.snapshot_before_nid, e.snapshot_nid FROM rs_events e
			WHERE e.room_nid = $1 AND `+timelineEvent+` AND e.stream_pos IN (`+list+`)`, append([]any{room.nid}, args...)...)
		if err != nil {
			return fmt.Errorf("states around events of %s: %w", room.id, err)
		}
		defer rows.Close()
		for rows.Next() {
			var p eventPlace
			if err := rows.Scan(&p.pos, &p.before, &p.after); err != nil {
				return fmt.Errorf("scan event: %w", err)
			}
			out[p.pos] = p
		}
		return rows.Err()
	})
	return out, err
}

func (r *reader) HistoryGaps(ctx context.Context, roomID string, from, to int64) ([]HistoryGap, error) {
	room, ok, err := r.room(ctx, roomID)
	if err != nil || !ok {
		return nil, err
	}
	// A prev_event stored as an outlier counts as missing, as in
	// BackwardExtremities: the history before it is unknown.
	rows, err := r.db.QueryContext(ctx, `SELECT DISTINCT e.event_id, e.stream_pos FROM rs_events e
		JOIN rs_event_edges ed ON ed.event_nid = e.event_nid
		WHERE e.room_nid = $1 AND e.stream_pos >= $2 AND e.stream_pos <= $3 AND `+timelineEvent+`
			AND NOT EXISTS (SELECT 1 FROM rs_events p WHERE p.event_id = ed.prev_event_id AND p.outlier = FALSE)`,
		room.nid, from, to)
	if err != nil {
		return nil, fmt.Errorf("history gaps of %s: %w", roomID, err)
	}
	var gaps []HistoryGap
	for rows.Next() {
		var g HistoryGap
		if err := rows.Scan(&g.EventID, &g.Pos); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan history gap: %w", err)
		}
		gaps = append(gaps, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(gaps) == 0 {
		return nil, err
	}
	reserves, err := loadReserves(ctx, r.db, room.nid)
	if err != nil {
		return nil, err
	}
	for i := range gaps {
		if res := reserveFor(reserves, gaps[i].Pos); res != nil {
			gaps[i].Left = max(res.left(), 0)
		}
	}
	slices.SortFunc(gaps, func(a, b HistoryGap) int { return cmp.Compare(b.Pos, a.Pos) })
	return gaps, nil
}

// HistoryOpenThrough relies on what historyView.allows says of a room
// whose every state has "shared" or "world_readable": an event before the
// user's last join is visible, and so is the join itself (the state after
// it has them joined). Every history visibility event of the room counts,
// rejected and outliers too: a state can only name events stored in it,
// and one too many only sends the room to VisibleEvents.
func (r *reader) HistoryOpenThrough(ctx context.Context, userID string, roomIDs []string) (map[string]int64, error) {
	ids := make(map[int64]string, len(roomIDs))
	nids := make([]int64, 0, len(roomIDs))
	for _, id := range roomIDs {
		room, ok, err := r.room(ctx, id)
		if err != nil {
			return nil, err
		}
		if ok && ids[room.nid] == "" {
			ids[room.nid] = id
			nids = append(nids, room.nid)
		}
	}
	lastJoin := make(map[int64]int64, len(nids))
	closed := map[int64]bool{}
	err := inChunks(nids, 2, int64(0), func(list string, args []any) error {
		// The literal type matches rs_events_history_visibility's
		// condition, so that the planner may use it.
		rows, err := r.db.QueryContext(ctx, `SELECT e.room_nid, MAX(e.stream_pos), NULL FROM rs_events e
			WHERE e.state_key = $1 AND e.membership IS NOT NULL AND e.membership = 'join' AND e.room_nid IN (`+list+`) AND `+timelineEvent+`
			GROUP BY e.room_nid
			UNION ALL
			SELECT e.room_nid, 0, e.json FROM rs_events e
			WHERE e.type = 'm.room.history_visibility' AND e.room_nid IN (`+list+`) AND e.state_key = ''`,
			append([]any{userID}, args...)...)
		if err != nil {
			return fmt.Errorf("history visibilities of %s's rooms: %w", userID, err)
		}
		defer rows.Close()
		for rows.Next() {
			var nid, pos int64
			var data []byte
			if err := rows.Scan(&nid, &pos, &data); err != nil {
				return fmt.Errorf("scan history visibility: %w", err)
			}
			switch {
			case data == nil:
				lastJoin[nid] = pos
			case !openVisibility(parseHistoryVisibility(data)):
				closed[nid] = true
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(lastJoin))
	for nid, pos := range lastJoin {
		if !closed[nid] && pos > 0 {
			out[ids[nid]] = pos
		}
	}
	return out, nil
}

// openVisibility tells the history visibilities that show a member every
// event from before their join.
func openVisibility(vis string) bool { return vis == visShared || vis == visWorldReadable }
