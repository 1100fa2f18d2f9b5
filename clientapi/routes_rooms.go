package clientapi

import "github.com/chappe-matrix/chappe/internal/httputil"

// roomRoutes registers the room surface beyond the foundation: aliases and
// the room directory, member lists, redactions, context, relations and
// threads, timestamps, upgrades, reports.
func (c *ClientAPI) roomRoutes(r *httputil.Router) {
	// room_directory.go
	r.Handle("PUT "+v3+"/directory/room/{roomAlias}", httputil.RequireAuth, c.setAlias)
	r.Handle("GET "+v3+"/directory/room/{roomAlias}", httputil.OptionalAuth, c.getAlias)
	r.Handle("DELETE "+v3+"/directory/room/{roomAlias}", httputil.RequireAuth, c.deleteAlias)
	r.Handle("GET "+v3+"/rooms/{roomId}/aliases", httputil.RequireAuth, c.roomAliases)
	r.Handle("GET "+v3+"/directory/list/room/{roomId}", httputil.OptionalAuth, c.getVisibility)
	r.Handle("PUT "+v3+"/directory/list/room/{roomId}", httputil.RequireAuth, c.setVisibility)
	r.Handle("GET "+v3+"/publicRooms", httputil.OptionalAuth, c.publicRoomsGet)
	r.Handle("POST "+v3+"/publicRooms", httputil.RequireAuth, c.publicRoomsPost)

	// room_members.go
	r.Handle("GET "+v3+"/joined_rooms", httputil.RequireAuth, c.joinedRooms)
	r.Handle("GET "+v3+"/rooms/{roomId}/joined_members", httputil.RequireAuth, c.joinedMembers)
	r.Handle("GET "+v3+"/rooms/{roomId}/members", httputil.RequireAuth, c.members)
	r.Handle("POST "+v3+"/rooms/{roomId}/forget", httputil.RequireAuth, c.forget)
	r.Handle("POST "+v3+"/knock/{roomIdOrAlias}", httputil.RequireAuth, c.knock)

	// room_events.go
	r.Handle("PUT "+v3+"/rooms/{roomId}/redact/{eventId}/{txnId}", httputil.RequireAuth, c.redact)
	r.Handle("GET "+v3+"/rooms/{roomId}/context/{eventId}", httputil.RequireAuth, c.eventContext)
	r.Handle("GET "+clientV1+"/rooms/{roomId}/timestamp_to_event", httputil.RequireAuth, c.timestampToEvent)
	r.Handle("GET "+clientV1+"/rooms/{roomId}/relations/{eventId}", httputil.RequireAuth, c.relations)
	r.Handle("GET "+clientV1+"/rooms/{roomId}/relations/{eventId}/{relType}", httputil.RequireAuth, c.relations)
	r.Handle("GET "+clientV1+"/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", httputil.RequireAuth, c.relations)
	r.Handle("GET "+clientV1+"/rooms/{roomId}/threads", httputil.RequireAuth, c.threads)

	// room_upgrade.go
	r.Handle("POST "+v3+"/rooms/{roomId}/upgrade", httputil.RequireAuth, c.upgradeRoom)
	r.Handle("GET "+clientV1+"/rooms/{roomId}/hierarchy", httputil.RequireAuth, c.hierarchy)
	r.Handle("POST "+v3+"/rooms/{roomId}/report/{eventId}", httputil.RequireAuth, c.reportEvent)
	r.Handle("POST "+v3+"/rooms/{roomId}/report", httputil.RequireAuth, c.reportRoom)
}
