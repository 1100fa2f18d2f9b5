package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func TestPushRulesDefaultsAndEdits(t *testing.T) {
	srv := testserver.New(t)
	alice := srv.RegisterUser(t, "alice")
	ctx := ctxT(t)

	rs := must[*pushrules.PushRuleset](t)(alice.GetPushRules(ctx))
	if len(rs.Override) == 0 || rs.Override[0].RuleID != ".m.rule.master" || rs.Override[0].Enabled {
		t.Fatalf("override should start with the disabled master rule: %+v", rs.Override)
	}
	ids := map[string]bool{}
	for _, r := range append(append([]*pushrules.PushRule{}, rs.Override...), rs.Underride...) {
		ids[r.RuleID] = true
	}
	for _, want := range []string{".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.suppress_edits", ".m.rule.message", ".m.rule.encrypted_room_one_to_one"} {
		if !ids[want] {
			t.Errorf("default rule %s missing", want)
		}
	}
	if ids[".m.rule.contains_display_name"] {
		t.Error("legacy .m.rule.contains_display_name is no longer a default (v1.17)")
	}

	notify := []*pushrules.PushAction{{Action: pushrules.ActionNotify}}
	put := func(ruleID string, req *mautrix.ReqPutPushRule) error {
		return alice.PutPushRule(ctx, "global", pushrules.OverrideRule, ruleID, req)
	}
	cond := []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "content.body", Pattern: "thé"}}
	if err := put("tea", &mautrix.ReqPutPushRule{Actions: notify, Conditions: cond}); err != nil {
		t.Fatal(err)
	}
	if err := put("coffee", &mautrix.ReqPutPushRule{Actions: notify, Conditions: cond, Before: "tea"}); err != nil {
		t.Fatal(err)
	}
	rs = must[*pushrules.PushRuleset](t)(alice.GetPushRules(ctx))
	if got := []string{rs.Override[0].RuleID, rs.Override[1].RuleID, rs.Override[2].RuleID}; got[0] != ".m.rule.master" || got[1] != "coffee" || got[2] != "tea" {
		t.Fatalf("order = %v, want master, coffee, tea", got)
	}
	wantErr(t, put("milk", &mautrix.ReqPutPushRule{Actions: notify, After: "nope"}), "M_UNKNOWN", 400)
	wantErr(t, put(".m.rule.mine", &mautrix.ReqPutPushRule{Actions: notify}), "M_INVALID_PARAM", 400)
	wantErr(t, alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.master"), "M_INVALID_PARAM", 400)
	wantErr(t, alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, "nope"), "M_NOT_FOUND", 404)
	_, err := alice.GetPushRule(ctx, "global", pushrules.ContentRule, "nope")
	wantErr(t, err, "M_NOT_FOUND", 404)

	if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, "tea"); err != nil {
		t.Fatal(err)
	}
	r := must[*pushrules.PushRule](t)(alice.GetPushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.master"))
	if !r.Enabled {
		t.Error("master should now be enabled")
	}
	_, err = alice.GetPushRule(ctx, "global", pushrules.OverrideRule, "tea")
	wantErr(t, err, "M_NOT_FOUND", 404)

	// The changed rules reach /sync as m.push_rules account data.
	resp := must[*mautrix.RespSync](t)(alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline))
	found := false
	for _, ev := range resp.AccountData.Events {
		if ev.Type.Type == "m.push_rules" {
			found = true
		}
	}
	if !found {
		t.Error("m.push_rules missing from the initial sync's account_data")
	}
}

// unread reads a room's counts from a sync of c.
func unread(t *testing.T, c *mautrix.Client, roomID id.RoomID) mautrix.UnreadNotificationCounts {
	t.Helper()
	resp := must[*mautrix.RespSync](t)(c.SyncRequest(ctxT(t), 0, "", "", false, event.PresenceOffline))
	room := resp.Rooms.Join[roomID]
	if room == nil || room.UnreadNotifications == nil {
		t.Fatalf("room %s or its unread_notifications missing", roomID)
	}
	return *room.UnreadNotifications
}

func TestUnreadCountsAndNotifications(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, _ := sharedRoom(t, alice, bob) // alice's first message: 1 for bob
	// Three members would make it a group; two members: one-to-one rules.
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, "deux"))
	mention := map[string]any{"msgtype": "m.text", "body": "bob: regarde", "m.mentions": map[string]any{"user_ids": []string{bob.UserID.String()}}}
	last := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, roomID, event.EventMessage, mention))

	got := unread(t, bob, roomID)
	if got.NotificationCount != 3 || got.HighlightCount != 1 {
		t.Fatalf("bob's counts = %+v, want 3 notifications, 1 highlight", got)
	}
	if own := unread(t, alice, roomID); own.NotificationCount != 0 {
		t.Errorf("alice's own messages count for her: %+v", own)
	}

	// /notifications lists them, newest first, the highlight alone with only=highlight.
	var list struct {
		Notifications []struct {
			Event struct {
				EventID string `json:"event_id"`
			} `json:"event"`
			Read   bool   `json:"read"`
			RoomID string `json:"room_id"`
		} `json:"notifications"`
	}
	_, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "notifications"}, map[string]string{"only": "highlight"}), nil, &list)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Notifications) != 1 || list.Notifications[0].Event.EventID != last.EventID.String() || list.Notifications[0].Read {
		t.Fatalf("highlight notifications = %+v", list.Notifications)
	}

	// A read receipt on the last message clears the counts.
	if err := bob.SendReceipt(ctx, roomID, last.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	if got := unread(t, bob, roomID); got.NotificationCount != 0 || got.HighlightCount != 0 {
		t.Fatalf("after the receipt: %+v", got)
	}
	_, err = bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "notifications"), nil, &list)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Notifications) != 3 || !list.Notifications[0].Read {
		t.Fatalf("notifications after the receipt = %+v", list.Notifications)
	}
}

func TestThreadedUnreadCounts(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	roomID, root := sharedRoom(t, alice, bob)
	inThread := map[string]any{"msgtype": "m.text", "body": "dans le fil",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root.String()}}
	threadMsg := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, roomID, event.EventMessage, inThread))

	filter := `{"room":{"timeline":{"unread_thread_notifications":true}}}`
	var resp struct {
		Rooms struct {
			Join map[string]struct {
				Unread  mautrix.UnreadNotificationCounts            `json:"unread_notifications"`
				Threads map[string]mautrix.UnreadNotificationCounts `json:"unread_thread_notifications"`
			} `json:"join"`
		} `json:"rooms"`
	}
	syncThreads := func() {
		t.Helper()
		_, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, map[string]string{"filter": filter}), nil, &resp)
		if err != nil {
			t.Fatal(err)
		}
	}
	syncThreads()
	room := resp.Rooms.Join[roomID.String()]
	if room.Unread.NotificationCount != 1 || room.Threads[root.String()].NotificationCount != 1 {
		t.Fatalf("main = %+v, threads = %+v; want 1 and 1", room.Unread, room.Threads)
	}
	// A receipt in the thread clears the thread only.
	if err := bob.SendReceipt(ctx, roomID, threadMsg.EventID, event.ReceiptTypeRead, map[string]any{"thread_id": root.String()}); err != nil {
		t.Fatal(err)
	}
	syncThreads()
	room = resp.Rooms.Join[roomID.String()]
	if room.Unread.NotificationCount != 1 || room.Threads[root.String()].NotificationCount != 0 {
		t.Fatalf("after the thread receipt: main = %+v, threads = %+v", room.Unread, room.Threads)
	}
}

// gateway is a push gateway that records what it receives; fail makes it
// answer 500 that many times first.
type gateway struct {
	mu     sync.Mutex
	bodies []map[string]any
	fail   int
	reject bool
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail > 0 {
		g.fail--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	g.bodies = append(g.bodies, body)
	if g.reject {
		_, _ = w.Write([]byte(`{"rejected":["key-1"]}`))
		return
	}
	_, _ = w.Write([]byte(`{"rejected":[]}`))
}

func (g *gateway) received() []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]any(nil), g.bodies...)
}

func setPusher(t *testing.T, c *mautrix.Client, url string) {
	t.Helper()
	body := map[string]any{"app_id": "fr.gouv.tchap", "pushkey": "key-1", "kind": "http", "app_display_name": "Tchap",
		"device_display_name": "Téléphone", "lang": "fr", "data": map[string]any{"url": url + "/_matrix/push/v1/notify", "format": "event_id_only"}}
	if _, err := c.MakeRequest(ctxT(t), http.MethodPost, c.BuildClientURL("v3", "pushers", "set"), body, nil); err != nil {
		t.Fatal(err)
	}
}

func pusherCount(t *testing.T, c *mautrix.Client) int {
	t.Helper()
	var out struct {
		Pushers []json.RawMessage `json:"pushers"`
	}
	if _, err := c.MakeRequest(ctxT(t), http.MethodGet, c.BuildClientURL("v3", "pushers"), nil, &out); err != nil {
		t.Fatal(err)
	}
	return len(out.Pushers)
}

func pushWait(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPushersAndGateway(t *testing.T) {
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	ctx := ctxT(t)
	g := &gateway{fail: 1}
	gw := httptest.NewServer(g)
	t.Cleanup(gw.Close)

	// Bad pushers are refused.
	bad := map[string]any{"app_id": "a", "pushkey": "k", "kind": "http", "app_display_name": "A", "device_display_name": "D",
		"lang": "fr", "data": map[string]any{"url": gw.URL + "/notify"}}
	_, err := bob.MakeRequest(ctx, http.MethodPost, bob.BuildClientURL("v3", "pushers", "set"), bad, nil)
	wantErr(t, err, "M_INVALID_PARAM", 400)

	setPusher(t, bob, gw.URL)
	if n := pusherCount(t, bob); n != 1 {
		t.Fatalf("%d pushers, want 1", n)
	}
	roomID, _ := sharedRoom(t, alice, bob)
	mention := map[string]any{"msgtype": "m.text", "body": "bob !", "m.mentions": map[string]any{"user_ids": []string{bob.UserID.String()}}}
	sent := must[*mautrix.RespSendEvent](t)(alice.SendMessageEvent(ctx, roomID, event.EventMessage, mention))

	// The first message's push failed once and is retried after a second;
	// both arrive.
	pushWait(t, "two pushes", 10*time.Second, func() bool { return len(g.received()) >= 2 })
	var found map[string]any
	for _, b := range g.received() {
		n := b["notification"].(map[string]any)
		if n["event_id"] == sent.EventID.String() {
			found = n
		}
	}
	if found == nil {
		t.Fatalf("no push for the mention: %v", g.received())
	}
	if found["room_id"] != roomID.String() || found["prio"] != "high" {
		t.Errorf("push = %v", found)
	}
	if counts := found["counts"].(map[string]any); counts["unread"] != float64(2) {
		t.Errorf("counts = %v, want unread 2", counts)
	}
	dev := found["devices"].([]any)[0].(map[string]any)
	if dev["pushkey"] != "key-1" || dev["app_id"] != "fr.gouv.tchap" || dev["tweaks"].(map[string]any)["highlight"] != true {
		t.Errorf("device = %v", dev)
	}
	if _, ok := found["content"]; ok {
		t.Error("event_id_only pushes carry no content")
	}

	// A gateway that rejects the pushkey gets the pusher removed.
	g.mu.Lock()
	g.reject = true
	g.mu.Unlock()
	must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, roomID, "encore"))
	pushWait(t, "the rejected pusher removed", 10*time.Second, func() bool { return pusherCount(t, bob) == 0 })

	// kind null deletes.
	setPusher(t, bob, gw.URL)
	del := map[string]any{"app_id": "fr.gouv.tchap", "pushkey": "key-1", "kind": nil}
	if _, err := bob.MakeRequest(ctx, http.MethodPost, bob.BuildClientURL("v3", "pushers", "set"), del, nil); err != nil {
		t.Fatal(err)
	}
	if n := pusherCount(t, bob); n != 0 {
		t.Fatalf("%d pushers after delete", n)
	}
}
