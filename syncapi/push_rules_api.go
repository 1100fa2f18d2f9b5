package syncapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// Limits on what a user may store: push rules are evaluated for every
// event of every room the user is in, so their number and size bound the
// cost of each event.
const (
	maxUserPushRules  = 200
	maxPatternBytes   = 512
	maxConditions     = 20
	maxRuleActions    = 20
	maxRuleIDBytes    = 255
	maxPushRuleBody   = 16 << 10
	maxConditionBytes = 2 << 10
)

func (s *SyncAPI) pushRuleRoutes(r *httputil.Router) {
	auth := httputil.RequireAuth
	r.Handle("GET "+v3+"/pushrules/{$}", auth, s.getAllPushRules)
	r.Handle("GET "+v3+"/pushrules", auth, s.getAllPushRules)
	r.Handle("GET "+v3+"/pushrules/global/{$}", auth, s.getGlobalPushRules)
	r.Handle("GET "+v3+"/pushrules/global", auth, s.getGlobalPushRules)
	r.Handle("GET "+v3+"/pushrules/global/{kind}/{ruleId}", auth, s.getPushRule)
	r.Handle("PUT "+v3+"/pushrules/global/{kind}/{ruleId}", auth, s.putPushRule)
	r.Handle("DELETE "+v3+"/pushrules/global/{kind}/{ruleId}", auth, s.deletePushRule)
	r.Handle("GET "+v3+"/pushrules/global/{kind}/{ruleId}/enabled", auth, s.getPushRuleEnabled)
	r.Handle("PUT "+v3+"/pushrules/global/{kind}/{ruleId}/enabled", auth, s.putPushRuleEnabled)
	r.Handle("GET "+v3+"/pushrules/global/{kind}/{ruleId}/actions", auth, s.getPushRuleActions)
	r.Handle("PUT "+v3+"/pushrules/global/{kind}/{ruleId}/actions", auth, s.putPushRuleActions)
}

func (s *SyncAPI) getAllPushRules(req *httputil.Request) (any, error) {
	rs, err := s.loadPushRules(req.Context(), req.Device.UserID)
	if err != nil {
		return nil, err
	}
	return pushRulesContent{Global: rs}, nil
}

func (s *SyncAPI) getGlobalPushRules(req *httputil.Request) (any, error) {
	rs, err := s.loadPushRules(req.Context(), req.Device.UserID)
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// rulePath reads and checks the path's kind and rule ID.
func rulePath(req *httputil.Request) (kind, ruleID string, err error) {
	kind, ruleID = req.PathValue("kind"), req.PathValue("ruleId")
	if !slices.Contains(pushKinds, kind) {
		return "", "", mxerr.InvalidParam("unknown push rule kind %q", kind)
	}
	if ruleID == "" || len(ruleID) > maxRuleIDBytes || strings.ContainsAny(ruleID, "/\\") {
		return "", "", mxerr.InvalidParam("a rule ID is 1 to %d bytes, without slashes or backslashes", maxRuleIDBytes)
	}
	return kind, ruleID, nil
}

// findRule returns the rule and its index in its kind's list; M_NOT_FOUND
// when absent.
func findRule(rs *pushRuleset, kind, ruleID string) (*pushRule, int, error) {
	list := *rs.kind(kind)
	i := slices.IndexFunc(list, func(r *pushRule) bool { return r.RuleID == ruleID })
	if i < 0 {
		return nil, -1, mxerr.NotFound("no push rule %s/%s", kind, ruleID)
	}
	return list[i], i, nil
}

func (s *SyncAPI) getPushRule(req *httputil.Request) (any, error) {
	kind, ruleID, err := rulePath(req)
	if err != nil {
		return nil, err
	}
	rs, err := s.loadPushRules(req.Context(), req.Device.UserID)
	if err != nil {
		return nil, err
	}
	r, _, err := findRule(&rs, kind, ruleID)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// putPushRule creates or replaces a user rule. A new rule without before
// or after becomes the user's most important rule of its kind, as in
// Synapse; before/after place it next to another user rule.
func (s *SyncAPI) putPushRule(req *httputil.Request) (any, error) {
	kind, ruleID, err := rulePath(req)
	if err != nil {
		return nil, err
	}
	if isServerDefault(ruleID) {
		return nil, mxerr.InvalidParam("rule IDs starting with '.' are server-default rules: only their enabled flag and actions may change")
	}
	body, err := readObject(req, maxPushRuleBody)
	if err != nil {
		return nil, err
	}
	rule, err := parseNewRule(kind, ruleID, body)
	if err != nil {
		return nil, err
	}
	q := req.URL.Query()
	before, after := q.Get("before"), q.Get("after")
	if before != "" && after != "" {
		return nil, mxerr.InvalidParam("give before or after, not both")
	}
	err = s.changePushRules(req.Context(), req.Device.UserID, func(rs *pushRuleset) error {
		list := rs.kind(kind)
		if _, i, err := findRule(rs, kind, ruleID); err == nil {
			if before == "" && after == "" {
				rule.Enabled = (*list)[i].Enabled
				(*list)[i] = rule
				return nil
			}
			*list = slices.Delete(*list, i, i+1)
		} else if countUserRules(rs) >= maxUserPushRules {
			return mxerr.New(http.StatusBadRequest, "M_RESOURCE_LIMIT_EXCEEDED", "at most %d push rules per user", maxUserPushRules)
		}
		at := slices.IndexFunc(*list, func(r *pushRule) bool { return !r.Default || r.RuleID != masterRule })
		if at < 0 {
			at = len(*list)
		}
		if anchor := before + after; anchor != "" {
			if isServerDefault(anchor) {
				return mxerr.InvalidParam("rules cannot be placed relative to server-default rule %s", anchor)
			}
			_, j, err := findRule(rs, kind, anchor)
			if err != nil {
				return mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "before/after rule not found: %s", anchor)
			}
			at = j
			if after != "" {
				at = j + 1
			}
		}
		*list = slices.Insert(*list, at, rule)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func countUserRules(rs *pushRuleset) int {
	n := 0
	for _, k := range pushKinds {
		for _, r := range *rs.kind(k) {
			if !r.Default {
				n++
			}
		}
	}
	return n
}

// parseNewRule checks a PUT body against its kind: content rules need a
// pattern, room and sender rules are named after their room or user,
// override and underride rules carry conditions.
func parseNewRule(kind, ruleID string, body []byte) (*pushRule, error) {
	var in struct {
		Actions    *[]json.RawMessage `json:"actions"`
		Conditions *[]json.RawMessage `json:"conditions"`
		Pattern    *string            `json:"pattern"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if in.Actions == nil {
		return nil, mxerr.MissingParam("actions is required")
	}
	if err := checkActions(*in.Actions); err != nil {
		return nil, err
	}
	rule := &pushRule{RuleID: ruleID, Enabled: true, Actions: *in.Actions}
	switch kind {
	case "content":
		if in.Pattern == nil || *in.Pattern == "" {
			return nil, mxerr.MissingParam("content rules need a pattern")
		}
		if len(*in.Pattern) > maxPatternBytes {
			return nil, mxerr.InvalidParam("the pattern is over %d bytes", maxPatternBytes)
		}
		rule.Pattern = in.Pattern
	case "room":
		if !mxid.RoomID(ruleID) {
			return nil, mxerr.InvalidParam("a room rule's ID is the room's ID, not %q", ruleID)
		}
	case "sender":
		if !mxid.UserID(ruleID) {
			return nil, mxerr.InvalidParam("a sender rule's ID is the sender's user ID, not %q", ruleID)
		}
	default: // override, underride
		conds := []json.RawMessage{}
		if in.Conditions != nil {
			conds = *in.Conditions
		}
		if len(conds) > maxConditions {
			return nil, mxerr.InvalidParam("at most %d conditions", maxConditions)
		}
		for _, c := range conds {
			var shape struct {
				Kind    string  `json:"kind"`
				Pattern *string `json:"pattern"`
			}
			if len(c) > maxConditionBytes || json.Unmarshal(c, &shape) != nil || shape.Kind == "" {
				return nil, mxerr.InvalidParam("each condition is an object of at most %d bytes with a kind", maxConditionBytes)
			}
			if shape.Pattern != nil && len(*shape.Pattern) > maxPatternBytes {
				return nil, mxerr.InvalidParam("a pattern is over %d bytes", maxPatternBytes)
			}
		}
		rule.Conditions = &conds
	}
	return rule, nil
}

// checkActions accepts the spec's actions: "notify", set_tweak objects,
// and the historical "dont_notify" and "coalesce", which clients still
// send and which mean nothing.
func checkActions(actions []json.RawMessage) error {
	if len(actions) > maxRuleActions {
		return mxerr.InvalidParam("at most %d actions", maxRuleActions)
	}
	for _, a := range actions {
		var name string
		if json.Unmarshal(a, &name) == nil {
			switch name {
			case "notify", "dont_notify", "coalesce":
				continue
			}
			return mxerr.InvalidParam("unknown action %q", name)
		}
		var tweak struct {
			SetTweak string `json:"set_tweak"`
		}
		if json.Unmarshal(a, &tweak) != nil || tweak.SetTweak == "" {
			return mxerr.InvalidParam("an action is a string or an object with set_tweak")
		}
	}
	return nil
}

func (s *SyncAPI) deletePushRule(req *httputil.Request) (any, error) {
	kind, ruleID, err := rulePath(req)
	if err != nil {
		return nil, err
	}
	err = s.changePushRules(req.Context(), req.Device.UserID, func(rs *pushRuleset) error {
		r, i, err := findRule(rs, kind, ruleID)
		if err != nil {
			return err
		}
		if r.Default {
			return mxerr.InvalidParam("server-default rules cannot be deleted, only disabled")
		}
		list := rs.kind(kind)
		*list = slices.Delete(*list, i, i+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *SyncAPI) getPushRuleEnabled(req *httputil.Request) (any, error) {
	r, err := s.getPushRule(req)
	if err != nil {
		return nil, err
	}
	return map[string]bool{"enabled": r.(*pushRule).Enabled}, nil
}

func (s *SyncAPI) getPushRuleActions(req *httputil.Request) (any, error) {
	r, err := s.getPushRule(req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"actions": r.(*pushRule).Actions}, nil
}

func (s *SyncAPI) putPushRuleEnabled(req *httputil.Request) (any, error) {
	var in struct {
		Enabled *bool `json:"enabled"`
	}
	return s.setRuleAttr(req, &in, func() error {
		if in.Enabled == nil {
			return mxerr.MissingParam("enabled is required")
		}
		return nil
	}, func(r *pushRule) { r.Enabled = *in.Enabled })
}

func (s *SyncAPI) putPushRuleActions(req *httputil.Request) (any, error) {
	var in struct {
		Actions *[]json.RawMessage `json:"actions"`
	}
	return s.setRuleAttr(req, &in, func() error {
		if in.Actions == nil {
			return mxerr.MissingParam("actions is required")
		}
		return checkActions(*in.Actions)
	}, func(r *pushRule) { r.Actions = *in.Actions })
}

// setRuleAttr decodes the body into in, checks it, and applies set to the
// rule, default or not.
func (s *SyncAPI) setRuleAttr(req *httputil.Request, in any, check func() error, set func(*pushRule)) (any, error) {
	kind, ruleID, err := rulePath(req)
	if err != nil {
		return nil, err
	}
	body, err := readObject(req, maxPushRuleBody)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, in); err != nil {
		return nil, mxerr.BadJSON("%v", err)
	}
	if err := check(); err != nil {
		return nil, err
	}
	err = s.changePushRules(req.Context(), req.Device.UserID, func(rs *pushRuleset) error {
		r, _, err := findRule(rs, kind, ruleID)
		if err != nil {
			return err
		}
		set(r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
