package syncapi

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Push rules are evaluated here, after the spec (v1.19, "Push Rules"),
// from a form compiled once per ruleset: the conditions' property paths
// are split, their globs turned into matchers and their member counts
// parsed when the ruleset is compiled, not for every member of a room on
// every event (mautrix's engine compiled each glob, and each member-count
// regular expression, on every match).

// pushEvent is an event as the conditions read it: its top-level fields
// and content, decoded once for all the members evaluated.
type pushEvent struct {
	fields map[string]any // type, sender, room_id, state_key (state events), content
	sender string
	roomID string
	body   string // content.body, when a string
}

func newPushEvent(typ, sender, roomID string, stateKey *string, content map[string]any) *pushEvent {
	fields := map[string]any{"type": typ, "sender": sender, "room_id": roomID, "content": content}
	if stateKey != nil {
		fields["state_key"] = *stateKey
	}
	body, _ := content["body"].(string)
	return &pushEvent{fields: fields, sender: sender, roomID: roomID, body: body}
}

// lookup reads a property by its split path; ok is false when it is absent.
func (e *pushEvent) lookup(path []string) (any, bool) {
	var cur any = e.fields
	for _, p := range path {
		m, isMap := cur.(map[string]any)
		if !isMap {
			return nil, false
		}
		if cur, isMap = m[p]; !isMap {
			return nil, false
		}
	}
	return cur, true
}

// pushContext is what conditions ask about the room, for one member.
type pushContext interface {
	memberCount() int
	displayName(userID string) string
	// senderPowerAtLeast says whether the sender's power level reaches the
	// level the room's power levels require for notification key.
	senderPowerAtLeast(sender, key string) bool
}

// compiledRules is one user's effective ruleset, ready to evaluate:
// enabled rules only, in the spec's order (override, content, room,
// sender, underride).
type compiledRules struct {
	rules []compiledRule
}

type compiledRule struct {
	kind, id  string
	conds     []pushCond
	actions   []json.RawMessage // as stored: /notifications and gateways get them verbatim
	notify    bool
	highlight bool
}

// pushCond is one compiled condition.
type pushCond func(ev *pushEvent, room pushContext, userID string) bool

// compileRules compiles a merged ruleset. Conditions that name me (the
// ruleset's owner) exactly, as the default rules do, compare with the
// user being evaluated instead: the default ruleset is compiled once for
// every user who never changed their rules.
func compileRules(rs *pushRuleset, me string) *compiledRules {
	out := &compiledRules{}
	for _, k := range pushKinds {
		for _, r := range *rs.kind(k) {
			if r == nil || !r.Enabled {
				continue
			}
			cr := compiledRule{kind: k, id: r.RuleID, actions: r.Actions}
			cr.notify, cr.highlight = actionFlags(r.Actions)
			switch k {
			case "override", "underride":
				if r.Conditions != nil {
					for _, raw := range *r.Conditions {
						cr.conds = append(cr.conds, compileCond(raw, me))
					}
				}
			case "content":
				pattern := ""
				if r.Pattern != nil {
					pattern = *r.Pattern
				}
				cr.conds = []pushCond{bodyMatch(pattern)}
			case "room":
				id := r.RuleID
				cr.conds = []pushCond{func(ev *pushEvent, _ pushContext, _ string) bool { return ev.roomID == id }}
			case "sender":
				id := r.RuleID
				cr.conds = []pushCond{func(ev *pushEvent, _ pushContext, userID string) bool { return ev.sender == relative(id, me, userID) }}
			}
			out.rules = append(out.rules, cr)
		}
	}
	return out
}

// match returns the first rule that matches the event for userID, nil
// when none does.
func (c *compiledRules) match(ev *pushEvent, room pushContext, userID string) *compiledRule {
	for i := range c.rules {
		r := &c.rules[i]
		ok := true
		for _, cond := range r.conds {
			if !cond(ev, room, userID) {
				ok = false
				break
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

// actionFlags reads the actions: "notify", and the highlight tweak (true
// when it has no value). dont_notify and coalesce are historical and
// ignored, as the spec asks.
func actionFlags(actions []json.RawMessage) (notify, highlight bool) {
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			notify = notify || s == "notify"
			continue
		}
		var t struct {
			SetTweak string           `json:"set_tweak"`
			Value    *json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &t) == nil && t.SetTweak == "highlight" {
			highlight = t.Value == nil || string(*t.Value) == "true"
		}
	}
	return notify, highlight
}

// never is an unknown or malformed condition: it makes its rule match
// nothing, as the spec asks.
func never(*pushEvent, pushContext, string) bool { return false }

// relative is s, or userID when s names the ruleset's owner.
func relative(s, me, userID string) string {
	if s == me {
		return userID
	}
	return s
}

// compileCond compiles one stored condition (me: see compileRules).
func compileCond(raw json.RawMessage, me string) pushCond {
	var c struct {
		Kind    string           `json:"kind"`
		Key     string           `json:"key"`
		Pattern *string          `json:"pattern"`
		Value   *json.RawMessage `json:"value"`
		Is      string           `json:"is"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return never
	}
	switch c.Kind {
	case "event_match":
		if c.Pattern == nil || c.Key == "" {
			return never
		}
		if c.Key == "content.body" {
			return bodyMatch(*c.Pattern)
		}
		path := splitPropertyPath(c.Key)
		if *c.Pattern == me {
			return func(ev *pushEvent, _ pushContext, userID string) bool {
				v, _ := ev.lookup(path)
				s, isString := v.(string)
				return isString && strings.EqualFold(s, userID)
			}
		}
		g := compileGlob(*c.Pattern)
		return func(ev *pushEvent, _ pushContext, _ string) bool {
			v, ok := ev.lookup(path)
			s, isString := v.(string)
			return ok && isString && g(s)
		}
	case "event_property_is", "event_property_contains":
		want, ok := scalarValue(c.Value)
		if !ok || c.Key == "" {
			return never
		}
		path := splitPropertyPath(c.Key)
		mine := want == any(me)
		wanted := func(userID string) any {
			if mine {
				return userID
			}
			return want
		}
		if c.Kind == "event_property_is" {
			return func(ev *pushEvent, _ pushContext, userID string) bool {
				v, ok := ev.lookup(path)
				return ok && scalarEqual(v, wanted(userID))
			}
		}
		return func(ev *pushEvent, _ pushContext, userID string) bool {
			v, _ := ev.lookup(path)
			list, _ := v.([]any)
			w := wanted(userID)
			for _, item := range list {
				if scalarEqual(item, w) {
					return true
				}
			}
			return false
		}
	case "contains_display_name":
		return func(ev *pushEvent, room pushContext, userID string) bool {
			name := room.displayName(userID)
			return name != "" && ev.body != "" && containsWord(ev.body, name)
		}
	case "room_member_count":
		cmp := parseMemberCount(c.Is)
		if cmp == nil {
			return never
		}
		return func(_ *pushEvent, room pushContext, _ string) bool { return cmp(room.memberCount()) }
	case "sender_notification_permission":
		if c.Key == "" {
			return never
		}
		key := c.Key
		return func(ev *pushEvent, room pushContext, _ string) bool { return room.senderPowerAtLeast(ev.sender, key) }
	}
	return never
}

// splitPropertyPath splits a dot-separated property path (spec appendix):
// "." separates, "\." and "\\" are a literal dot and backslash.
func splitPropertyPath(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		switch {
		case key[i] == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			i++
			cur.WriteByte(key[i])
		case key[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(key[i])
		}
	}
	return append(parts, cur.String())
}

// compileGlob matches a whole value against a glob ("*" any run, "?" one
// character), case-insensitively. A pattern without wildcards, the usual
// case, is a plain comparison.
func compileGlob(pattern string) func(string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return func(s string) bool { return strings.EqualFold(s, pattern) }
	}
	re, err := regexp.Compile(`(?is)^` + globRegexp(pattern) + `$`)
	if err != nil {
		return func(string) bool { return false }
	}
	return re.MatchString
}

// bodyMatch is event_match on content.body (and content rules): the glob
// must match a part of the body that starts and ends at word boundaries,
// a boundary being the body's start or end or any character other than
// A-Z, a-z, 0-9 and _.
func bodyMatch(pattern string) pushCond {
	re, err := regexp.Compile(`(?is)(?:^|\W)` + globRegexp(pattern) + `(?:\W|$)`)
	if err != nil {
		return never
	}
	return func(ev *pushEvent, _ pushContext, _ string) bool { return ev.body != "" && re.MatchString(ev.body) }
}

func globRegexp(pattern string) string {
	var b strings.Builder
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// scalarValue reads the value of event_property_is/contains: a string, an
// integer, a boolean or null (a compound value never matches).
func scalarValue(raw *json.RawMessage) (any, bool) {
	if raw == nil {
		return nil, false
	}
	var v any
	if json.Unmarshal(*raw, &v) != nil {
		return nil, false
	}
	switch v.(type) {
	case nil, string, bool, float64:
		return v, true
	}
	return nil, false
}

// scalarEqual compares an event's value with a condition's: same type
// and value, numbers as integers.
func scalarEqual(v, want any) bool {
	switch w := want.(type) {
	case nil:
		return v == nil
	case string:
		s, ok := v.(string)
		return ok && s == w
	case bool:
		b, ok := v.(bool)
		return ok && b == w
	case float64:
		n, ok := v.(float64)
		return ok && n == w && n == math.Trunc(n)
	}
	return false
}

// parseMemberCount reads room_member_count's "is": an integer with an
// optional ==, <, >, <= or >= prefix.
func parseMemberCount(is string) func(int) bool {
	op := strings.TrimRight(is, "0123456789")
	n, err := strconv.Atoi(is[len(op):])
	if err != nil {
		return nil
	}
	switch op {
	case "", "==":
		return func(c int) bool { return c == n }
	case "<":
		return func(c int) bool { return c < n }
	case ">":
		return func(c int) bool { return c > n }
	case "<=":
		return func(c int) bool { return c <= n }
	case ">=":
		return func(c int) bool { return c >= n }
	}
	return nil
}

// containsWord says whether body contains name, case-insensitively, with
// a word boundary on each side.
func containsWord(body, name string) bool {
	lb, ln := strings.ToLower(body), strings.ToLower(name)
	for from := 0; from <= len(lb)-len(ln); {
		i := strings.Index(lb[from:], ln)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(ln)
		if (start == 0 || !isWordByte(lb[start-1])) && (end == len(lb) || !isWordByte(lb[end])) {
			return true
		}
		from = start + 1
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
