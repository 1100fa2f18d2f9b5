package roomserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// fullSnapshotEvery bounds the delta chains: after this many deltas the
// next snapshot is written in full, so reading any state walks at most this
// many rows, while a state change usually costs one small row rather than a
// copy of the whole room state.
const fullSnapshotEvery = 64

// stateKey is a (type, state_key) pair.
type stateKey struct {
	Type     string
	StateKey string
}

// stateMap is a room state: (type, state_key) -> event_nid.
type stateMap map[stateKey]int64

// snapshotEntry is one stored (type, state_key) -> event_nid entry; an
// event_nid of 0 removes the key (only state resolution can do that).
type snapshotEntry struct {
	T string `json:"t"`
	K string `json:"k"`
	E int64  `json:"e"`
}

func encodeEntries(entries []snapshotEntry) (string, error) {
	data, err := json.Marshal(entries)
	if err != nil {
		return "", fmt.Errorf("encode snapshot entries: %w", err)
	}
	return string(data), nil
}

// fullEntries lists a whole state, for a full snapshot row.
func fullEntries(s stateMap) []snapshotEntry {
	out := make([]snapshotEntry, 0, len(s))
	for k, nid := range s {
		out = append(out, snapshotEntry{T: k.Type, K: k.StateKey, E: nid})
	}
	return out
}

// insertSnapshot stores a snapshot row: a delta on parent (parent != 0) or
// a full state (parent == 0).
func insertSnapshot(ctx context.Context, q sqlutil.Querier, roomNID, parent int64, chainLen int, entries []snapshotEntry) (int64, error) {
	enc, err := encodeEntries(entries)
	if err != nil {
		return 0, err
	}
	var nid int64
	err = q.QueryRowContext(ctx, `INSERT INTO rs_state_snapshots (room_nid, parent_nid, chain_len, entries)
		VALUES ($1, $2, $3, $4) RETURNING snapshot_nid`, roomNID, parent, chainLen, enc).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("insert state snapshot: %w", err)
	}
	return nid, nil
}

// snapshotChainSQL reads a snapshot and its ancestors up to the last full
// one, newest first (n = 0 is the snapshot asked for).
const snapshotChainSQL = `WITH RECURSIVE chain (snapshot_nid, parent_nid, chain_len, entries, n) AS (
	SELECT snapshot_nid, parent_nid, chain_len, entries, 0 FROM rs_state_snapshots WHERE snapshot_nid = $1
	UNION ALL
	SELECT s.snapshot_nid, s.parent_nid, s.chain_len, s.entries, c.n + 1
	FROM rs_state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
)
SELECT chain_len, entries FROM chain ORDER BY n DESC`

// loadSnapshot rebuilds the state of snapshot nid (0 is the empty state)
// and returns it with the snapshot's chain length.
func loadSnapshot(ctx context.Context, q sqlutil.Querier, nid int64) (stateMap, int, error) {
	state := stateMap{}
	if nid == 0 {
		return state, 0, nil
	}
	rows, err := q.QueryContext(ctx, snapshotChainSQL, nid)
	if err != nil {
		return nil, 0, fmt.Errorf("load state snapshot %d: %w", nid, err)
	}
	defer rows.Close()
	chainLen, found := 0, false
	for rows.Next() {
		var enc string
		if err := rows.Scan(&chainLen, &enc); err != nil {
			return nil, 0, fmt.Errorf("scan state snapshot %d: %w", nid, err)
		}
		var entries []snapshotEntry
		if err := json.Unmarshal([]byte(enc), &entries); err != nil {
			return nil, 0, fmt.Errorf("decode state snapshot %d: %w", nid, err)
		}
		for _, e := range entries {
			k := stateKey{e.T, e.K}
			if e.E == 0 {
				delete(state, k)
			} else {
				state[k] = e.E
			}
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read state snapshot %d: %w", nid, err)
	}
	if !found {
		return nil, 0, fmt.Errorf("state snapshot %d does not exist", nid)
	}
	return state, chainLen, nil
}

// The snapshot cache holds at most snapshotCacheEntries states of at most
// snapshotCacheStateEntries (type, state_key) entries together (about
// 130 bytes each: some 33 MB), enough for the states an initial sync of a
// user in 300 rooms of 300 members reads, without keeping a thousand
// copies of a big room's state. The number of states is the looser bound:
// history visibility reads the state around several events per room (an
// initial sync of 300 rooms joined late needs ~3,000; with 1,024 it took
// 75 ms instead of 47).
const (
	snapshotCacheEntries      = 8192
	snapshotCacheStateEntries = 256 << 10
)

// snapshotCache keeps recently read states; snapshots never change once
// written, so entries never go stale.
type snapshotCache struct {
	db    *sqlutil.DB
	cache *lru[int64, stateMap]
}

func newSnapshotCache(db *sqlutil.DB, capacity, maxStateEntries int) *snapshotCache {
	return &snapshotCache{db: db, cache: newCostLRU[int64](capacity, maxStateEntries, func(s stateMap) int { return len(s) })}
}

// state returns the (shared, read-only) state of snapshot nid.
func (c *snapshotCache) state(ctx context.Context, nid int64) (stateMap, error) {
	if s, ok := c.cache.get(nid); ok {
		return s, nil
	}
	s, _, err := loadSnapshot(ctx, c.db, nid)
	if err != nil {
		return nil, err
	}
	c.cache.put(nid, s)
	return s, nil
}
