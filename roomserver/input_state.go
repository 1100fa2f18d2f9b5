package roomserver

import (
	"context"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// stateView is a room state as input sees it: a stored snapshot, read as a
// shared map (never modified) plus the changes made on top of it since,
// so that a chain of state events costs one small map each, not a copy of
// the room's state each.
type stateView struct {
	nid    int64 // its rs_state_snapshots row (0: the empty state)
	chain  int   // the row's chain length
	base   stateMap
	delta  map[stateKey]int64 // over base; 0 removes the key
	onHead bool               // base is the room head's own map
}

// maxViewDelta bounds a view's changes before they are folded into a
// fresh base.
const maxViewDelta = fullSnapshotEvery

func (v *stateView) get(k stateKey) int64 {
	if nid, ok := v.delta[k]; ok {
		return nid
	}
	return v.base[k]
}

// full is the whole state as a new map.
func (v *stateView) full() stateMap {
	out := make(stateMap, len(v.base)+len(v.delta))
	for k, nid := range v.base {
		out[k] = nid
	}
	for k, nid := range v.delta {
		if nid == 0 {
			delete(out, k)
		} else {
			out[k] = nid
		}
	}
	return out
}

// with is the view with changes applied (nid 0 removes a key); the new
// view has no snapshot row yet.
func (v *stateView) with(changes map[stateKey]int64) *stateView {
	if len(v.delta)+len(changes) > maxViewDelta {
		s := v.full()
		for k, nid := range changes {
			if nid == 0 {
				delete(s, k)
			} else {
				s[k] = nid
			}
		}
		return &stateView{base: s}
	}
	delta := make(map[stateKey]int64, len(v.delta)+len(changes))
	for k, nid := range v.delta {
		delta[k] = nid
	}
	for k, nid := range changes {
		delta[k] = nid
	}
	return &stateView{base: v.base, delta: delta, onHead: v.onHead}
}

// diff lists the entries of to that differ from from (0: removed).
func diffStates(from, to stateMap) map[stateKey]int64 {
	out := map[stateKey]int64{}
	for k, nid := range to {
		if from[k] != nid {
			out[k] = nid
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			out[k] = 0
		}
	}
	return out
}

// stateStore writes and reads the snapshots of one room for input.
type stateStore struct {
	rs      *Roomserver
	roomNID int64
	head    *roomHead // its state map may serve as a base, read only
	tx      *sqlutil.Tx
	views   map[int64]*stateView // snapshots read or written by this job
	written []int64              // snapshots written by this job
}

func newStateStore(rs *Roomserver, h *roomHead, tx *sqlutil.Tx) *stateStore {
	return &stateStore{rs: rs, roomNID: h.nid, head: h, tx: tx, views: map[int64]*stateView{}}
}

// view reads snapshot nid (committed, or written by this job).
func (s *stateStore) view(ctx context.Context, nid int64) (*stateView, error) {
	if v, ok := s.views[nid]; ok {
		return v, nil
	}
	if nid == 0 {
		return &stateView{base: stateMap{}}, nil
	}
	if nid == s.head.snapshot {
		v := &stateView{nid: nid, chain: s.head.chainLen, base: s.head.state, onHead: true}
		s.views[nid] = v
		return v, nil
	}
	state, err := s.rs.reader.snapshots.state(ctx, nid)
	if err != nil {
		return nil, err
	}
	var chain int
	if err := s.tx.QueryRowContext(ctx, `SELECT chain_len FROM rs_state_snapshots WHERE snapshot_nid = $1`, nid).Scan(&chain); err != nil {
		return nil, fmt.Errorf("read state snapshot %d: %w", nid, err)
	}
	v := &stateView{nid: nid, chain: chain, base: state}
	s.views[nid] = v
	return v, nil
}

// write stores v, a state derived from parent by changes: a delta row on
// parent while the chain is short and the changes few, else a full row.
func (s *stateStore) write(ctx context.Context, parent *stateView, changes map[stateKey]int64) (*stateView, error) {
	v := parent.with(changes)
	var (
		entries  []snapshotEntry
		parentID int64
		chain    int
	)
	if parent.nid != 0 && parent.chain+1 < fullSnapshotEvery && len(changes) <= maxViewDelta {
		entries = make([]snapshotEntry, 0, len(changes))
		for k, nid := range changes {
			entries = append(entries, snapshotEntry{T: k.Type, K: k.StateKey, E: nid})
		}
		parentID, chain = parent.nid, parent.chain+1
	} else {
		full := v.full()
		v = &stateView{base: full}
		entries = fullEntries(full)
	}
	nid, err := insertSnapshot(ctx, s.tx, s.roomNID, parentID, chain, entries)
	if err != nil {
		return nil, err
	}
	v.nid, v.chain = nid, chain
	s.views[nid] = v
	s.written = append(s.written, nid)
	return v, nil
}

// writeFull stores a whole state (a state given by event IDs).
func (s *stateStore) writeFull(ctx context.Context, state stateMap) (*stateView, error) {
	nid, err := insertSnapshot(ctx, s.tx, s.roomNID, 0, 0, fullEntries(state))
	if err != nil {
		return nil, err
	}
	v := &stateView{nid: nid, base: state}
	s.views[nid] = v
	s.written = append(s.written, nid)
	return v, nil
}
