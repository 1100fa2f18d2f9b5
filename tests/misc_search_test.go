package tests

import (
	"fmt"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

func searchBody(term, extra string) string {
	return fmt.Sprintf(`{"search_categories":{"room_events":{"search_term":%q%s}}}`, term, extra)
}

func roomEvents(t *testing.T, r rawResponse) map[string]any {
	t.Helper()
	cats, _ := r.body["search_categories"].(map[string]any)
	re, _ := cats["room_events"].(map[string]any)
	if r.status != 200 || re == nil {
		t.Fatalf("search: %d %v", r.status, r.body)
	}
	return re
}

func TestSearch(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	carol := srv.RegisterUser(t, "carol")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Budget meeting"}))
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoomByID(ctx, room.RoomID))
	secret := must[*mautrix.RespCreateRoom](t)(carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{}))
	must[*mautrix.RespSendEvent](t)(carol.SendText(ctx, secret.RoomID, "the budget is secret"))
	for i := range 5 {
		must[*mautrix.RespSendEvent](t)(alice.SendText(ctx, room.RoomID, fmt.Sprintf("budget line %d for 2026", i)))
	}
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, room.RoomID, "lunch?"))
	must[*mautrix.RespSendEvent](t)(bob.SendText(ctx, room.RoomID, "Le BUDGET, le budget, toujours le budget"))

	url := srv.URL + "/_matrix/client/v3/search"
	re := roomEvents(t, rawRequest(t, "POST", url, bob.AccessToken, searchBody("budget", `,"order_by":"rank"`)))
	results, _ := re["results"].([]any)
	// 5 lines, bob's message and the room name; not carol's private room.
	if len(results) != 7 || re["count"] != float64(7) {
		t.Fatalf("rank search: %v", re)
	}
	first := results[0].(map[string]any)["result"].(map[string]any)
	if body := first["content"].(map[string]any)["body"]; body != "Le BUDGET, le budget, toujours le budget" {
		t.Fatalf("best ranked = %v", body)
	}
	if hl, _ := re["highlights"].([]any); len(hl) != 1 || hl[0] != "budget" {
		t.Fatalf("highlights = %v", re["highlights"])
	}

	// Newest first, two per page, with context and groups.
	var seen []string
	next := ""
	for page := 0; page < 10; page++ {
		u := url
		if next != "" {
			u += "?next_batch=" + next
		}
		re := roomEvents(t, rawRequest(t, "POST", u, bob.AccessToken, searchBody("budget line", `,"order_by":"recent","keys":["content.body"],"filter":{"limit":2},"event_context":{"before_limit":1,"after_limit":1,"include_profile":true},"groupings":{"group_by":[{"key":"room_id"}]}`)))
		for _, res := range re["results"].([]any) {
			m := res.(map[string]any)
			seen = append(seen, m["result"].(map[string]any)["content"].(map[string]any)["body"].(string))
			c, _ := m["context"].(map[string]any)
			if c == nil || c["start"] == nil || c["end"] == nil || c["profile_info"] == nil {
				t.Fatalf("context = %v", m["context"])
			}
		}
		if g, _ := re["groups"].(map[string]any)["room_id"].(map[string]any); g[room.RoomID.String()] == nil {
			t.Fatalf("groups = %v", re["groups"])
		}
		nb, _ := re["next_batch"].(string)
		if nb == "" {
			break
		}
		next = nb
	}
	if len(seen) != 5 || seen[0] != "budget line 4 for 2026" || seen[4] != "budget line 0 for 2026" {
		t.Fatalf("recent pages = %q", seen)
	}

	// Filters: only bob's messages.
	re = roomEvents(t, rawRequest(t, "POST", url, bob.AccessToken, searchBody("budget", fmt.Sprintf(`,"filter":{"senders":[%q]}`, bob.UserID))))
	if results, _ := re["results"].([]any); len(results) != 1 {
		t.Fatalf("sender filter: %v", re)
	}
	// Carol finds only her own room.
	re = roomEvents(t, rawRequest(t, "POST", url, carol.AccessToken, searchBody("budget", "")))
	if results, _ := re["results"].([]any); len(results) != 1 {
		t.Fatalf("carol's search: %v", re)
	}
	// Literal % and _ match themselves.
	re = roomEvents(t, rawRequest(t, "POST", url, bob.AccessToken, searchBody("%", "")))
	if results, _ := re["results"].([]any); len(results) != 0 {
		t.Fatalf("wildcard search: %v", re)
	}

	cases := []struct {
		name, url, token, body, code string
		status                       int
	}{
		{"no term", url, bob.AccessToken, `{"search_categories":{"room_events":{}}}`, "M_MISSING_PARAM", 400},
		{"bad order", url, bob.AccessToken, searchBody("x", `,"order_by":"size"`), "M_INVALID_PARAM", 400},
		{"bad key", url, bob.AccessToken, searchBody("x", `,"keys":["content.url"]`), "M_INVALID_PARAM", 400},
		{"bad grouping", url, bob.AccessToken, searchBody("x", `,"groupings":{"group_by":[{"key":"type"}]}`), "M_INVALID_PARAM", 400},
		{"bad next_batch", url + "?next_batch=zz", bob.AccessToken, searchBody("x", ""), "M_INVALID_PARAM", 400},
		{"wrong type", url, bob.AccessToken, `{"search_categories":{"room_events":{"search_term":3}}}`, "M_BAD_JSON", 400},
		{"no token", url, "", searchBody("x", ""), "M_MISSING_TOKEN", 401},
	}
	for _, c := range cases {
		if r := rawRequest(t, "POST", c.url, c.token, c.body); r.status != c.status || r.body["errcode"] != c.code {
			t.Errorf("%s: %d %v", c.name, r.status, r.body)
		}
	}
}
