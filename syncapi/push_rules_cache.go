package syncapi

import (
	"context"
	"fmt"
	"sync"
)

// rulesCache keeps each user's compiled ruleset, so that an event in a big
// room neither reads nor compiles hundreds of rulesets. An entry is
// evicted when the user's m.push_rules change: at once by the process
// that changes them (changePushRules), and by the others when the change
// reaches them on the sync output stream. Users who never changed their
// rules share one compiled default ruleset.
type rulesCache struct {
	mu       sync.Mutex
	users    map[string]*compiledRules
	epoch    uint64 // bumped by every eviction: a load that raced one is not kept
	defaults *compiledRules
}

// maxCachedRulesets bounds the per-user entries (a few KB each); past it
// the cache starts over. Users on the default rules do not count.
const maxCachedRulesets = 4096

// defaultsOwner stands for "the user evaluated" in the shared default
// ruleset: no real user ID contains a NUL.
const defaultsOwner = "@\x00me:\x00"

// get returns the compiled rulesets of users, reading those not cached in
// one query.
func (c *rulesCache) get(ctx context.Context, st *store, users []string) (map[string]*compiledRules, error) {
	out := make(map[string]*compiledRules, len(users))
	var missing []string
	c.mu.Lock()
	epoch := c.epoch
	for _, u := range users {
		if cr, ok := c.users[u]; ok {
			out[u] = cr
		} else {
			missing = append(missing, u)
		}
	}
	if c.defaults == nil {
		rs := defaultRuleset(defaultsOwner)
		c.defaults = compileRules(&rs, defaultsOwner)
	}
	defaults := c.defaults
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	raws, err := st.pushRulesOf(ctx, missing)
	if err != nil {
		return nil, err
	}
	loaded := make(map[string]*compiledRules, len(missing))
	for _, u := range missing {
		raw, stored := raws[u]
		if !stored {
			loaded[u] = defaults
			continue
		}
		rs := parseStoredRules(raw, u)
		loaded[u] = compileRules(&rs, u)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.epoch == epoch
	if keep && (c.users == nil || len(c.users)+len(loaded) > maxCachedRulesets) {
		c.users = make(map[string]*compiledRules, len(loaded))
	}
	for u, cr := range loaded {
		out[u] = cr
		if keep {
			c.users[u] = cr
		}
	}
	return out, nil
}

// forget evicts userID's entry.
func (c *rulesCache) forget(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	delete(c.users, userID)
}

// onOutput evicts the rules of users whose global account data changed
// (m.push_rules is global account data; the message does not say which
// type changed).
func (c *rulesCache) onOutput(_ context.Context, _ uint64, m *OutputMessage) error {
	if m.Kind == kindAccountData && m.RoomID == "" {
		c.forget(m.UserID)
	}
	return nil
}

// pushRulesOf reads the stored m.push_rules of users (absent: no entry).
func (st *store) pushRulesOf(ctx context.Context, users []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for len(users) > 0 {
		n := min(len(users), maxInList)
		chunk := users[:n]
		users = users[n:]
		in, args := inList(2, chunk)
		rows, err := st.db.QueryContext(ctx, `SELECT user_id, content FROM sy_account_data
			WHERE room_id = '' AND type = $1 AND user_id IN (`+in+`)`, append([]any{pushRulesType}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("read push rules: %w", err)
		}
		for rows.Next() {
			var u, c string
			if err := rows.Scan(&u, &c); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read push rules: %w", err)
			}
			out[u] = []byte(c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read push rules: %w", err)
		}
	}
	return out, nil
}
