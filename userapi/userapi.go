package userapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Deps is what the userapi needs from its process. It mirrors the fields of
// base.Base rather than taking a *base.Base because base imports httputil,
// which imports this package for Device: taking *base.Base here would be an
// import cycle. Callers write
//
//	userapi.New(ctx, userapi.Deps{Config: b.Config, DB: b.DB, Bus: b.Bus, Log: b.Log})
type Deps struct {
	Config *config.Config
	DB     *sqlutil.DB
	Bus    *bus.Bus
	Log    *slog.Logger // slog.Default() when nil
}

// UserAPI serves the userapi endpoints of api.go.
type UserAPI struct {
	serverName string
	db         *sqlutil.DB
	bus        *bus.Bus
	log        *slog.Logger
	now        func() time.Time // replaced in tests to expire nonces

	// Lifetimes of refreshable access tokens and of refresh tokens (0: no
	// limit), from registration.* in the configuration.
	accessLifetime  time.Duration
	refreshLifetime time.Duration

	tokens   *tokenCache // token hash -> device, for QueryAccessToken
	keys     *keysState  // keys_outbox.go
	seen     *lastSeen
	revokeSu *nats.Subscription

	appServices *appServices // appservice.go

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New migrates the userapi tables and starts serving its endpoints on the
// bus. Several processes may run it against the same database and bus: the
// bus balances requests between them and token revocations reach them all.
func New(ctx context.Context, d Deps) (*UserAPI, error) {
	if d.Config == nil || d.DB == nil || d.Bus == nil {
		return nil, errors.New("userapi: config, database and bus are required")
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	if err := Migrate(ctx, d.DB); err != nil {
		return nil, err
	}
	if d.Config.Registration.RefreshableAccessTokenLifetime <= 0 {
		return nil, errors.New("userapi: registration.refreshable_access_token_lifetime must be positive")
	}
	u := &UserAPI{
		serverName:      d.Config.ServerName,
		db:              d.DB,
		bus:             d.Bus,
		log:             log.With("component", "userapi"),
		now:             time.Now,
		accessLifetime:  d.Config.Registration.RefreshableAccessTokenLifetime,
		refreshLifetime: max(d.Config.Registration.RefreshTokenLifetime, 0),
		tokens:          newTokenCache(serverCacheTTL, maxCachedTokens, d.Bus.NC),
		seen:            newLastSeen(),
		stop:            make(chan struct{}),
		done:            make(chan struct{}),
	}
	sub, err := subscribeRevocations(d.Bus, u.tokens)
	if err != nil {
		return nil, err
	}
	u.revokeSu = sub
	if err := u.initAppServices(ctx, d.Config.AppServicePaths()); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	if err := u.serve(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	go u.flushLoop()
	go dummyHash() // computed now rather than during the first failed login
	return u, nil
}

// serve registers every endpoint's handler. The bus keeps the
// subscriptions until it closes.
func (u *UserAPI) serve() error {
	return errors.Join(
		QueryAccessToken.Serve(u.bus, u.queryAccessToken),
		Login.Serve(u.bus, u.login),
		Register.Serve(u.bus, u.register),
		QueryAvailable.Serve(u.bus, u.queryAvailable),
		Logout.Serve(u.bus, u.logout),
		QueryProfile.Serve(u.bus, u.queryProfile),
		CreateNonce.Serve(u.bus, u.createNonce),
		ConsumeNonce.Serve(u.bus, u.consumeNonce),
		Deactivate.Serve(u.bus, u.deactivate),
		u.serveAccount(),
		u.serveKeys(), // keys_serve.go: end-to-end encryption
		u.serveAppServices(),
	)
}

// Close stops listening for revocations and writes the last-seen times not
// yet stored. The endpoint subscriptions end when the bus closes.
func (u *UserAPI) Close() {
	u.closeOnce.Do(func() {
		if u.revokeSu != nil {
			_ = u.revokeSu.Unsubscribe()
		}
		close(u.stop)
		<-u.done
	})
}

// Migrate creates or updates the userapi tables. New calls it; so does
// CreateAccount, for the CLI that runs without the rest of the server.
func Migrate(ctx context.Context, db *sqlutil.DB) error {
	if err := db.Migrate(ctx, "userapi", migrations); err != nil {
		return fmt.Errorf("userapi: %w", err)
	}
	return migrateE2EE(ctx, db) // dehydrated_schema.go: the "userapi_e2ee" list
}

// userID builds the full user ID of a local account.
func (u *UserAPI) userID(localpart string) string {
	return "@" + localpart + ":" + u.serverName
}
