package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Push rules are stored as the user's global m.push_rules account data,
// whole (user rules and server-default rules with the user's changes to
// them), because that is what clients read in /sync. Every read merges the
// stored set with this server's current defaults (mergeDefaults), so a
// default rule added by a newer version reaches every user, and a user
// keeps only the enabled flag and actions of the default rules.

const pushRulesType = "m.push_rules"

// Push rule kinds, in the order they are evaluated.
var pushKinds = []string{"override", "content", "room", "sender", "underride"}

// pushRule is a rule as the API and the account data show it. Conditions
// and actions are kept as sent (they were checked when set): unknown
// conditions must stay and simply never match.
type pushRule struct {
	RuleID     string             `json:"rule_id"`
	Default    bool               `json:"default"`
	Enabled    bool               `json:"enabled"`
	Actions    []json.RawMessage  `json:"actions"`
	Conditions *[]json.RawMessage `json:"conditions,omitempty"`
	Pattern    *string            `json:"pattern,omitempty"`
}

// pushRuleset is the "global" scope.
type pushRuleset struct {
	Override  []*pushRule `json:"override"`
	Content   []*pushRule `json:"content"`
	Room      []*pushRule `json:"room"`
	Sender    []*pushRule `json:"sender"`
	Underride []*pushRule `json:"underride"`
}

type pushRulesContent struct {
	Global pushRuleset `json:"global"`
}

// kind returns the list of one kind; nil for an unknown kind.
func (rs *pushRuleset) kind(k string) *[]*pushRule {
	switch k {
	case "override":
		return &rs.Override
	case "content":
		return &rs.Content
	case "room":
		return &rs.Room
	case "sender":
		return &rs.Sender
	case "underride":
		return &rs.Underride
	}
	return nil
}

const masterRule = ".m.rule.master"

// defaultRuleset is the spec's list of server-default rules (v1.19: the
// legacy body-matching mention rules, .m.rule.contains_display_name,
// .m.rule.contains_user_name and .m.rule.roomnotif, were removed in v1.17;
// clients send m.mentions instead). userID fills the rules that name the
// user.
func defaultRuleset(userID string) pushRuleset {
	uid, _ := json.Marshal(userID)
	cond := func(s ...string) *[]json.RawMessage {
		out := make([]json.RawMessage, len(s))
		for i, c := range s {
			out[i] = json.RawMessage(c)
		}
		return &out
	}
	acts := func(s ...string) []json.RawMessage {
		out := make([]json.RawMessage, len(s))
		for i, a := range s {
			out[i] = json.RawMessage(a)
		}
		return out
	}
	const (
		notify    = `"notify"`
		sound     = `{"set_tweak":"sound","value":"default"}`
		highlight = `{"set_tweak":"highlight"}`
	)
	rule := func(id string, enabled bool, c *[]json.RawMessage, a []json.RawMessage) *pushRule {
		return &pushRule{RuleID: id, Default: true, Enabled: enabled, Conditions: c, Actions: a}
	}
	match := func(key, pattern string) string {
		k, _ := json.Marshal(key)
		p, _ := json.Marshal(pattern)
		return `{"kind":"event_match","key":` + string(k) + `,"pattern":` + string(p) + `}`
	}
	return pushRuleset{
		Override: []*pushRule{
			rule(masterRule, false, cond(), acts()),
			rule(".m.rule.suppress_notices", true, cond(match("content.msgtype", "m.notice")), acts()),
			rule(".m.rule.invite_for_me", true, cond(match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userID)),
				acts(notify, sound)),
			rule(".m.rule.member_event", true, cond(match("type", "m.room.member")), acts()),
			rule(".m.rule.is_user_mention", true, cond(`{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":`+string(uid)+`}`),
				acts(notify, sound, highlight)),
			rule(".m.rule.is_room_mention", true, cond(`{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true}`,
				`{"kind":"sender_notification_permission","key":"room"}`), acts(notify, highlight)),
			rule(".m.rule.tombstone", true, cond(match("type", "m.room.tombstone"), match("state_key", "")), acts(notify, highlight)),
			rule(".m.rule.reaction", true, cond(match("type", "m.reaction")), acts()),
			rule(".m.rule.room.server_acl", true, cond(match("type", "m.room.server_acl"), match("state_key", "")), acts()),
			rule(".m.rule.suppress_edits", true, cond(`{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}`), acts()),
		},
		Content: []*pushRule{},
		Room:    []*pushRule{},
		Sender:  []*pushRule{},
		Underride: []*pushRule{
			rule(".m.rule.call", true, cond(match("type", "m.call.invite")), acts(notify, `{"set_tweak":"sound","value":"ring"}`)),
			rule(".m.rule.encrypted_room_one_to_one", true, cond(`{"kind":"room_member_count","is":"2"}`, match("type", "m.room.encrypted")), acts(notify, sound)),
			rule(".m.rule.room_one_to_one", true, cond(`{"kind":"room_member_count","is":"2"}`, match("type", "m.room.message")), acts(notify, sound)),
			rule(".m.rule.message", true, cond(match("type", "m.room.message")), acts(notify)),
			rule(".m.rule.encrypted", true, cond(match("type", "m.room.encrypted")), acts(notify)),
		},
	}
}

// isServerDefault says whether a rule ID names a server-default rule: the
// spec reserves IDs starting with a dot.
func isServerDefault(ruleID string) bool { return strings.HasPrefix(ruleID, ".") }

// mergeDefaults builds the effective ruleset from what is stored (nil when
// the user never changed anything): per kind, the user's rules in their
// order before the server-default ones, except .m.rule.master, which comes
// first of all. Default rules keep the user's enabled flag and actions.
func mergeDefaults(stored *pushRuleset, userID string) pushRuleset {
	out := defaultRuleset(userID)
	if stored == nil {
		return out
	}
	for _, k := range pushKinds {
		defaults := *out.kind(k)
		var user []*pushRule
		known := map[string]*pushRule{}
		for _, r := range *stored.kind(k) {
			if r == nil {
				continue
			}
			if isServerDefault(r.RuleID) {
				known[r.RuleID] = r
			} else {
				user = append(user, r)
			}
		}
		var head, tail []*pushRule
		for _, d := range defaults {
			if s, ok := known[d.RuleID]; ok {
				d.Enabled = s.Enabled
				if s.Actions != nil {
					d.Actions = s.Actions
				}
			}
			if d.RuleID == masterRule {
				head = append(head, d)
			} else {
				tail = append(tail, d)
			}
		}
		merged := append(append(head, user...), tail...)
		if merged == nil {
			merged = []*pushRule{}
		}
		*out.kind(k) = merged
	}
	return out
}

// loadPushRules reads userID's effective ruleset.
func (s *SyncAPI) loadPushRules(ctx context.Context, userID string) (pushRuleset, error) {
	raw, err := s.store.accountData(ctx, userID, "", pushRulesType)
	if err != nil {
		return pushRuleset{}, err
	}
	return parseStoredRules(raw, userID), nil
}

// parseStoredRules merges stored m.push_rules content with the defaults.
// Content that does not parse (written by an older version, or damaged)
// is treated as absent rather than failing every notification.
func parseStoredRules(raw []byte, userID string) pushRuleset {
	if raw == nil {
		return mergeDefaults(nil, userID)
	}
	var c pushRulesContent
	if err := json.Unmarshal(raw, &c); err != nil {
		return mergeDefaults(nil, userID)
	}
	return mergeDefaults(&c.Global, userID)
}

// changePushRules applies change to userID's effective ruleset and stores
// the result, at a new stream position, waking the user's syncs.
func (s *SyncAPI) changePushRules(ctx context.Context, userID string, change func(rs *pushRuleset) error) error {
	// This process's cache forgets the rules before the change is
	// answered; other processes hear of it on the sync output stream.
	defer s.push.rules.forget(userID)
	return s.updateAccountData(ctx, userID, "", pushRulesType, func(old []byte) ([]byte, error) {
		rs := parseStoredRules(old, userID)
		if err := change(&rs); err != nil {
			return nil, err
		}
		out, err := json.Marshal(pushRulesContent{Global: rs})
		if err != nil {
			return nil, fmt.Errorf("encode push rules: %w", err)
		}
		return out, nil
	})
}
