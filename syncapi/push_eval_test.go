package syncapi

import (
	"encoding/json"
	"testing"
)

// fakePushRoom answers the rules' questions about a room.
type fakePushRoom struct {
	members int
	names   map[string]string
	power   map[string]int64 // sender → level; "room" needs 50
}

func (r fakePushRoom) memberCount() int                 { return r.members }
func (r fakePushRoom) displayName(userID string) string { return r.names[userID] }
func (r fakePushRoom) senderPowerAtLeast(sender, key string) bool {
	return key == "room" && r.power[sender] >= 50
}

func pushEv(t *testing.T, typ string, stateKey *string, content string) *pushEvent {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal([]byte(content), &c); err != nil {
		t.Fatal(err)
	}
	return newPushEvent(typ, "@alice:test", "!room:test", stateKey, c)
}

func TestDefaultRulesCompiled(t *testing.T) {
	const bob = "@bob:test"
	// One compiled default ruleset serves every user.
	rs := defaultRuleset(defaultsOwner)
	rules := compileRules(&rs, defaultsOwner)
	group := fakePushRoom{members: 5, power: map[string]int64{"@alice:test": 100}}
	dm := fakePushRoom{members: 2}
	bobKey := bob
	cases := []struct {
		name      string
		ev        *pushEvent
		room      fakePushRoom
		rule      string // "" for none
		notify    bool
		highlight bool
	}{
		{"message in a group", pushEv(t, "m.room.message", nil, `{"msgtype":"m.text","body":"salut"}`), group, ".m.rule.message", true, false},
		{"message one to one", pushEv(t, "m.room.message", nil, `{"msgtype":"m.text","body":"salut"}`), dm, ".m.rule.room_one_to_one", true, false},
		{"notice", pushEv(t, "m.room.message", nil, `{"msgtype":"m.notice","body":"bot"}`), group, ".m.rule.suppress_notices", false, false},
		{"mention", pushEv(t, "m.room.message", nil, `{"body":"hé","m.mentions":{"user_ids":["@bob:test"]}}`), group, ".m.rule.is_user_mention", true, true},
		{"someone else's mention", pushEv(t, "m.room.message", nil, `{"body":"hé","m.mentions":{"user_ids":["@carol:test"]}}`), group, ".m.rule.message", true, false},
		{"room mention by a moderator", pushEv(t, "m.room.message", nil, `{"body":"tous","m.mentions":{"room":true}}`), group, ".m.rule.is_room_mention", true, true},
		{"room mention without power", pushEv(t, "m.room.message", nil, `{"body":"tous","m.mentions":{"room":true}}`), dm, ".m.rule.room_one_to_one", true, false},
		{"invite for bob", pushEv(t, "m.room.member", &bobKey, `{"membership":"invite"}`), group, ".m.rule.invite_for_me", true, false},
		{"other member event", pushEv(t, "m.room.member", new(string), `{"membership":"join"}`), group, ".m.rule.member_event", false, false},
		{"reaction", pushEv(t, "m.reaction", nil, `{}`), group, ".m.rule.reaction", false, false},
		{"edit", pushEv(t, "m.room.message", nil, `{"body":"* x","m.relates_to":{"rel_type":"m.replace","event_id":"$e"}}`), group, ".m.rule.suppress_edits", false, false},
		{"encrypted one to one", pushEv(t, "m.room.encrypted", nil, `{}`), dm, ".m.rule.encrypted_room_one_to_one", true, false},
		{"state event nobody cares about", pushEv(t, "m.room.topic", new(string), `{"topic":"x"}`), group, "", false, false},
		{"type matched whole, not as a part", pushEv(t, "m.room.message.extra", nil, `{"body":"x"}`), group, "", false, false},
	}
	for _, c := range cases {
		r := rules.match(c.ev, c.room, bob)
		got := ""
		if r != nil {
			got = r.id
		}
		if got != c.rule || r != nil && (r.notify != c.notify || r.highlight != c.highlight) {
			t.Errorf("%s: rule %q (%+v), want %q notify=%v highlight=%v", c.name, got, r, c.rule, c.notify, c.highlight)
		}
	}
}

func TestPushConditions(t *testing.T) {
	room := fakePushRoom{members: 3, names: map[string]string{"@bob:test": "Bob"}}
	cond := func(raw string) pushCond { return compileCond(json.RawMessage(raw), "@bob:test") }
	ev := pushEv(t, "m.room.message", nil, `{"body":"Lunch with Bob, ex-ample!","n":3,"flag":true,"list":["a",2],
		"m.relates_to":{"rel_type":"m.thread"},"a.b":{"c":"dotted"},"topic":"Lunch plans"}`)
	cases := []struct {
		raw  string
		want bool
	}{
		{`{"kind":"event_match","key":"content.topic","pattern":"lunc?*"}`, true},
		{`{"kind":"event_match","key":"content.topic","pattern":"LUNCH PLANS"}`, true},
		{`{"kind":"event_match","key":"content.topic","pattern":"lunch"}`, false}, // whole value
		{`{"kind":"event_match","key":"content.n","pattern":"*"}`, false},         // not a string
		{`{"kind":"event_match","key":"content.missing","pattern":"*"}`, false},
		{`{"kind":"event_match","key":"content.body","pattern":"ex*ple"}`, true},
		{`{"kind":"event_match","key":"content.body","pattern":"bob"}`, true},
		{`{"kind":"event_match","key":"content.body","pattern":"bo"}`, false}, // word boundaries
		{`{"kind":"event_match","key":"content.m\\.relates_to.rel_type","pattern":"m.thread"}`, true},
		{`{"kind":"event_match","key":"content.a\\.b.c","pattern":"dotted"}`, true},
		{`{"kind":"event_property_is","key":"content.n","value":3}`, true},
		{`{"kind":"event_property_is","key":"content.n","value":"3"}`, false},
		{`{"kind":"event_property_is","key":"content.flag","value":true}`, true},
		{`{"kind":"event_property_is","key":"content.list","value":"a"}`, false},
		{`{"kind":"event_property_contains","key":"content.list","value":2}`, true},
		{`{"kind":"event_property_contains","key":"content.list","value":"b"}`, false},
		{`{"kind":"contains_display_name"}`, true},
		{`{"kind":"room_member_count","is":"3"}`, true},
		{`{"kind":"room_member_count","is":">=4"}`, false},
		{`{"kind":"room_member_count","is":"<4"}`, true},
		{`{"kind":"room_member_count","is":"~3"}`, false},
		{`{"kind":"sender_notification_permission","key":"room"}`, false},
		{`{"kind":"org.example.unknown"}`, false},
	}
	for _, c := range cases {
		if got := cond(c.raw)(ev, room, "@bob:test"); got != c.want {
			t.Errorf("%s: %v, want %v", c.raw, got, c.want)
		}
	}
}

// A user's own rules come before the defaults of their kind; disabled
// rules are skipped.
func TestUserRulesOrder(t *testing.T) {
	stored := `{"global":{"override":[{"rule_id":".m.rule.suppress_notices","default":true,"enabled":false,"actions":[]}],
		"content":[{"rule_id":"cafe","default":false,"enabled":true,"pattern":"café","actions":["notify",{"set_tweak":"highlight"}]}],
		"room":[{"rule_id":"!quiet:test","default":false,"enabled":true,"actions":[]}]}}`
	rs := parseStoredRules([]byte(stored), "@bob:test")
	rules := compileRules(&rs, "@bob:test")
	room := fakePushRoom{members: 5}
	if r := rules.match(pushEv(t, "m.room.message", nil, `{"msgtype":"m.notice","body":"un café ?"}`), room, "@bob:test"); r == nil || r.id != "cafe" || !r.highlight {
		t.Fatalf("keyword in a notice: %+v", r)
	}
	quiet := newPushEvent("m.room.message", "@alice:test", "!quiet:test", nil, map[string]any{"body": "chut"})
	if r := rules.match(quiet, room, "@bob:test"); r == nil || r.id != "!quiet:test" || r.notify {
		t.Fatalf("muted room: %+v", r)
	}
}
