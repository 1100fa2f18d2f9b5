package clientapi

import "github.com/chappe-matrix/chappe/internal/httputil"

// miscRoutes registers the smaller modules of the client-server API:
// VoIP, OpenID, room summaries, mutual rooms, user reports, extended
// profiles, support discovery, server administration, third-party
// lookups and search.
func (c *ClientAPI) miscRoutes(r *httputil.Router) {
	r.Handle("GET "+v3+"/voip/turnServer", httputil.RequireAuth, c.turnServer)       // misc_voip.go
	r.Handle("GET /.well-known/matrix/support", httputil.NoAuth, c.wellKnownSupport) // misc_voip.go
	r.Handle("POST "+v3+"/user/{userId}/openid/request_token", httputil.RequireAuth, c.requestOpenIDToken)

	// misc_rooms.go
	r.Handle("GET "+clientV1+"/room_summary/{roomIdOrAlias}", httputil.OptionalAuth, c.roomSummary)
	r.Handle("GET "+clientV1+"/mutual_rooms", httputil.RequireAuth, c.mutualRooms)
	r.Handle("POST "+v3+"/users/{userId}/report", httputil.RequireAuth, c.reportUser)

	// misc_profile.go: every field; displayname and avatar_url keep
	// their member-event propagation (account_profile.go).
	r.Handle("GET "+v3+"/profile/{userId}/{keyName}", httputil.OptionalAuth, c.getAnyProfileField)
	r.HandleLimited("PUT "+v3+"/profile/{userId}/{keyName}", httputil.RequireAuth, "profile", c.setAnyProfileField)
	r.HandleLimited("DELETE "+v3+"/profile/{userId}/{keyName}", httputil.RequireAuth, "profile", c.deleteProfileField)

	// misc_admin.go
	r.Handle("GET "+v3+"/admin/whois/{userId}", httputil.RequireAuth, c.whois)
	r.Handle("GET "+clientV1+"/admin/suspend/{userId}", httputil.RequireAuth, c.getAccountFlag(flagSuspended))
	r.Handle("PUT "+clientV1+"/admin/suspend/{userId}", httputil.RequireAuth, c.setAccountFlag(flagSuspended))
	r.Handle("GET "+clientV1+"/admin/lock/{userId}", httputil.RequireAuth, c.getAccountFlag(flagLocked))
	r.Handle("PUT "+clientV1+"/admin/lock/{userId}", httputil.RequireAuth, c.setAccountFlag(flagLocked))

	// misc_thirdparty.go
	r.Handle("GET "+v3+"/thirdparty/protocols", httputil.RequireAuth, c.thirdPartyProtocols)
	r.Handle("GET "+v3+"/thirdparty/protocol/{protocol}", httputil.RequireAuth, c.thirdPartyProtocol)
	r.Handle("GET "+v3+"/thirdparty/location/{protocol}", httputil.RequireAuth, c.thirdPartyProtocol)
	r.Handle("GET "+v3+"/thirdparty/user/{protocol}", httputil.RequireAuth, c.thirdPartyProtocol)
	r.Handle("GET "+v3+"/thirdparty/location", httputil.RequireAuth, c.thirdPartyReverse("alias"))
	r.Handle("GET "+v3+"/thirdparty/user", httputil.RequireAuth, c.thirdPartyReverse("userid"))

	r.Handle("POST "+v3+"/search", httputil.RequireAuth, c.search) // misc_search.go
}
