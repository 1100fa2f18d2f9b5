package tests

import (
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Aliases, canonical alias checks, directory visibility and /publicRooms.
func TestRoomAliasesAndDirectory(t *testing.T) {
	ctx := ctxT(t)
	srv := testserver.New(t)
	alice, bob := srv.RegisterUser(t, "alice"), srv.RegisterUser(t, "bob")
	room := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "public", Name: "Town hall", Topic: "everything", Preset: "public_chat",
	})).RoomID
	alias := id.RoomAlias("#hall:localhost")

	must[*mautrix.RespAliasCreate](t)(alice.CreateAlias(ctx, alias, room))
	_, err := alice.CreateAlias(ctx, alias, room)
	wantErr(t, err, "M_UNKNOWN", 409)
	_, err = bob.CreateAlias(ctx, "#bobs:localhost", room)
	wantErr(t, err, "M_FORBIDDEN", 403)
	_, err = alice.CreateAlias(ctx, "#far:elsewhere.example", room)
	wantErr(t, err, "M_INVALID_PARAM", 400)
	_, err = alice.CreateAlias(ctx, "#nowhere:localhost", "!unknown:localhost")
	wantErr(t, err, "M_NOT_FOUND", 404)

	resolved := must[*mautrix.RespAliasResolve](t)(bob.ResolveAlias(ctx, alias))
	if resolved.RoomID != room {
		t.Fatalf("alias resolves to %s", resolved.RoomID)
	}
	_, err = bob.ResolveAlias(ctx, "#unknown:localhost")
	wantErr(t, err, "M_NOT_FOUND", 404)
	_, err = bob.GetAliases(ctx, room)
	wantErr(t, err, "M_FORBIDDEN", 403)
	list := must[*mautrix.RespAliasList](t)(alice.GetAliases(ctx, room))
	if len(list.Aliases) != 1 || list.Aliases[0] != alias {
		t.Fatalf("aliases %v", list.Aliases)
	}

	// The canonical alias must point to the room.
	must[*mautrix.RespSendEvent](t)(alice.SendStateEvent(ctx, room, event.StateCanonicalAlias, "", map[string]any{"alias": alias}))
	_, err = alice.SendStateEvent(ctx, room, event.StateCanonicalAlias, "", map[string]any{"alias": "#unknown:localhost"})
	wantErr(t, err, "M_BAD_ALIAS", 400)

	// Only the creator or a moderator deletes an alias.
	must[*mautrix.RespJoinRoom](t)(bob.JoinRoom(ctx, string(alias), nil))
	_, err = bob.DeleteAlias(ctx, alias)
	wantErr(t, err, "M_FORBIDDEN", 403)

	// createRoom's visibility=public published the room.
	pub := must[*mautrix.RespPublicRooms](t)(bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{}))
	if len(pub.Chunk) != 1 || pub.TotalRoomCountEstimate != 1 {
		t.Fatalf("public rooms %+v", pub)
	}
	info := pub.Chunk[0]
	if info.RoomID != room || info.Name != "Town hall" || info.Topic != "everything" || info.CanonicalAlias != alias ||
		info.NumJoinedMembers != 2 || info.JoinRule != event.JoinRulePublic || info.WorldReadable {
		t.Fatalf("chunk %+v", info)
	}

	// Visibility: read by anyone, changed by moderators.
	vis := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/directory/list/room/"+url.PathEscape(string(room)), "", "")
	if vis.status != 200 || vis.body["visibility"] != "public" {
		t.Fatalf("visibility %+v", vis)
	}
	listURL := srv.URL + "/_matrix/client/v3/directory/list/room/" + url.PathEscape(string(room))
	if r := rawRequest(t, "PUT", listURL, bob.AccessToken, `{"visibility":"private"}`); r.status != 403 {
		t.Fatalf("bob unpublished: %+v", r)
	}
	if r := rawRequest(t, "PUT", listURL, alice.AccessToken, `{"visibility":"hidden"}`); r.body["errcode"] != "M_INVALID_PARAM" {
		t.Fatalf("bad visibility: %+v", r)
	}
	if r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/directory/list/room/!nope:localhost", "", ""); r.status != 404 {
		t.Fatalf("unknown room visibility: %+v", r)
	}

	// Pagination and filters over three public rooms.
	space := must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "public", Name: "Space", CreationContent: map[string]any{"type": "m.space"},
	})).RoomID
	must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", Name: "Garden"}))
	page1 := must[*mautrix.RespPublicRooms](t)(bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 2}))
	if len(page1.Chunk) != 2 || page1.NextBatch == "" || page1.Chunk[0].RoomID != room || page1.TotalRoomCountEstimate != 3 {
		t.Fatalf("page 1 %+v", page1)
	}
	page2 := must[*mautrix.RespPublicRooms](t)(bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 2, Since: page1.NextBatch}))
	if len(page2.Chunk) != 1 || page2.NextBatch != "" || page2.PrevBatch == "" {
		t.Fatalf("page 2 %+v", page2)
	}
	var filtered mautrix.RespPublicRooms
	post := func(body map[string]any) {
		t.Helper()
		_, err := bob.MakeRequest(ctx, "POST", bob.BuildClientURL("v3", "publicRooms"), body, &filtered)
		if err != nil {
			t.Fatal(err)
		}
	}
	post(map[string]any{"filter": map[string]any{"generic_search_term": "gard"}})
	if len(filtered.Chunk) != 1 || filtered.Chunk[0].Name != "Garden" {
		t.Fatalf("search %+v", filtered.Chunk)
	}
	post(map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})
	if len(filtered.Chunk) != 1 || filtered.Chunk[0].RoomID != space || filtered.Chunk[0].RoomType != event.RoomTypeSpace {
		t.Fatalf("space filter %+v", filtered.Chunk)
	}
	post(map[string]any{"filter": map[string]any{"room_types": []any{nil}}})
	if len(filtered.Chunk) != 2 {
		t.Fatalf("rooms without type: %+v", filtered.Chunk)
	}
	if r := rawRequest(t, "GET", srv.URL+"/_matrix/client/v3/publicRooms?since=garbage", "", ""); r.body["errcode"] != "M_INVALID_PARAM" {
		t.Fatalf("bad since: %+v", r)
	}

	// Unpublishing and deleting.
	if r := rawRequest(t, "PUT", listURL, alice.AccessToken, `{"visibility":"private"}`); r.status != 200 {
		t.Fatalf("unpublish: %+v", r)
	}
	must[*mautrix.RespAliasDelete](t)(alice.DeleteAlias(ctx, alias))
	_, err = alice.DeleteAlias(ctx, alias)
	wantErr(t, err, "M_NOT_FOUND", 404)
	_, err = alice.ResolveAlias(ctx, alias)
	wantErr(t, err, "M_NOT_FOUND", 404)
	if r := rawRequest(t, "DELETE", srv.URL+"/_matrix/client/v3/directory/room/notanalias", alice.AccessToken, ""); r.body["errcode"] != "M_INVALID_PARAM" {
		t.Fatalf("bad alias: %+v", r)
	}
}
