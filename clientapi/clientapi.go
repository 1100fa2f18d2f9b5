// Package clientapi serves the client-server API. It is stateless: every
// request becomes a command or a query to the component that owns the data
// (userapi for accounts, roomserver for rooms). /sync and /messages are
// served by syncapi.
package clientapi

import (
	"context"
	"log/slog"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
)

// ClientAPI is the running component.
type ClientAPI struct {
	cfg *config.Config
	bus *bus.Bus
	log *slog.Logger
}

// New registers the client-server routes on the process's router.
func New(_ context.Context, b *base.Base) (*ClientAPI, error) {
	c := &ClientAPI{cfg: b.Config, bus: b.Bus, log: b.Log.With("component", "clientapi")}
	c.routes(b.Router)
	return c, nil
}

// Close stops nothing: the component holds no resources of its own.
func (c *ClientAPI) Close() {}

const v3 = "/_matrix/client/v3"

func (c *ClientAPI) routes(r *httputil.Router) {
	r.Handle("GET /_matrix/client/versions", httputil.OptionalAuth, c.versions)
	r.Handle("GET /.well-known/matrix/client", httputil.NoAuth, c.wellKnown)
	r.Handle("GET "+v3+"/capabilities", httputil.RequireAuth, c.capabilities)

	r.Handle("GET "+v3+"/login", httputil.NoAuth, c.loginFlows)
	r.HandleLimited("POST "+v3+"/login", httputil.NoAuth, "login", c.login)
	r.Handle("POST "+v3+"/logout", httputil.RequireAuth, c.logout)
	r.Handle("POST "+v3+"/logout/all", httputil.RequireAuth, c.logoutAll)
	r.Handle("GET "+v3+"/account/whoami", httputil.RequireAuth, c.whoami)

	r.HandleLimited("POST "+v3+"/register", httputil.NoAuth, "register", c.register)
	r.Handle("GET "+v3+"/register/available", httputil.NoAuth, c.registerAvailable)
	r.Handle("GET /_synapse/admin/v1/register", httputil.NoAuth, c.sharedSecretNonce)
	r.HandleLimited("POST /_synapse/admin/v1/register", httputil.NoAuth, "register", c.sharedSecretRegister)

	r.HandleLimited("POST "+v3+"/createRoom", httputil.RequireAuth, "create_room", c.createRoom)
	r.HandleLimited("POST "+v3+"/join/{roomIdOrAlias}", httputil.RequireAuth, "join", c.joinRoomIDOrAlias)
	r.HandleLimited("POST "+v3+"/rooms/{roomId}/join", httputil.RequireAuth, "join", c.joinRoomByID)
	r.Handle("POST "+v3+"/rooms/{roomId}/leave", httputil.RequireAuth, c.leave)
	r.HandleLimited("POST "+v3+"/rooms/{roomId}/invite", httputil.RequireAuth, "invite", c.invite)
	r.Handle("POST "+v3+"/rooms/{roomId}/kick", httputil.RequireAuth, c.kick)
	r.Handle("POST "+v3+"/rooms/{roomId}/ban", httputil.RequireAuth, c.ban)
	r.Handle("POST "+v3+"/rooms/{roomId}/unban", httputil.RequireAuth, c.unban)

	r.HandleLimited("PUT "+v3+"/rooms/{roomId}/send/{eventType}/{txnId}", httputil.RequireAuth, "message", c.sendMessage)
	r.HandleLimited("PUT "+v3+"/rooms/{roomId}/state/{eventType}", httputil.RequireAuth, "message", c.sendState)
	r.HandleLimited("PUT "+v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", httputil.RequireAuth, "message", c.sendState)
	r.Handle("GET "+v3+"/rooms/{roomId}/state", httputil.RequireAuth, c.getState)
	r.Handle("GET "+v3+"/rooms/{roomId}/state/{eventType}", httputil.RequireAuth, c.getStateEvent)
	r.Handle("GET "+v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", httputil.RequireAuth, c.getStateEvent)
	r.Handle("GET "+v3+"/rooms/{roomId}/event/{eventId}", httputil.RequireAuth, c.getEvent)

	c.accountRoutes(r) // routes_account.go: profile, devices, password, deactivation, tokens
	c.roomRoutes(r)    // routes_rooms.go: directory, aliases, members, context, relations, upgrades
	c.keyRoutes(r)     // routes_keys.go: E2EE keys, cross-signing, to-device, key backup
	c.miscRoutes(r)    // routes_misc.go: VoIP, OpenID, summaries, admin, search, third-party
}
