package userapi_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
	"github.com/chappe-matrix/chappe/userapi"
)

const serverName = "test.local"

// env is one userapi on an embedded bus and a fresh database.
type env struct {
	ctx  context.Context
	base *base.Base
	api  *userapi.UserAPI
}

// run runs f once per backend, each with its own environment.
func run(t *testing.T, f func(t *testing.T, e *env)) {
	for _, backend := range sqltest.Backends() {
		t.Run(backend, func(t *testing.T) {
			f(t, newEnv(t, backend))
		})
	}
}

// runOverNATS is run with every bus call going through NATS, for tests
// that watch the requests on the wire.
func runOverNATS(t *testing.T, f func(t *testing.T, e *env)) {
	for _, backend := range sqltest.Backends() {
		t.Run(backend, func(t *testing.T) {
			f(t, newEnvWith(t, backend, bus.Options{StoreDir: t.TempDir(), NoLocalCalls: true}))
		})
	}
}

func newEnv(t testing.TB, backend string) *env {
	t.Helper()
	return newEnvWith(t, backend, bus.Options{StoreDir: t.TempDir()})
}

func newEnvWith(t testing.TB, backend string, opts bus.Options) *env {
	t.Helper()
	ctx := t.Context()
	db := sqltest.Open(t, backend)
	b, err := bus.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	t.Cleanup(b.Close)
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ServerName = serverName
	bs := &base.Base{
		Config:  cfg,
		DB:      db,
		Bus:     b,
		Key:     key,
		Log:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics: prometheus.NewRegistry(),
	}
	e := &env{ctx: ctx, base: bs}
	e.api = e.start(t)
	return e
}

// start runs one more userapi instance on the environment's bus and
// database, as a second process would.
func (e *env) start(t testing.TB) *userapi.UserAPI {
	t.Helper()
	api, err := userapi.New(e.ctx, userapi.Deps{Config: e.base.Config, DB: e.base.DB, Bus: e.base.Bus, Log: e.base.Log})
	if err != nil {
		t.Fatalf("start userapi: %v", err)
	}
	t.Cleanup(api.Close)
	return api
}

// openDB opens a SQLite file in a temporary directory, or a fresh schema
// of the PostgreSQL database, dropped when the test ends.

// Helpers driving the userapi through the bus, as other components do.

func (e *env) register(t testing.TB, localpart, password string) *userapi.LoginResponse {
	t.Helper()
	resp, err := userapi.Register.Call(e.ctx, e.base.Bus, &userapi.RegisterRequest{Localpart: localpart, Password: password})
	if err != nil {
		t.Fatalf("register %s: %v", localpart, err)
	}
	return resp
}

func (e *env) login(t testing.TB, user, password, deviceID string) *userapi.LoginResponse {
	t.Helper()
	resp, err := userapi.Login.Call(e.ctx, e.base.Bus, &userapi.LoginRequest{User: user, Password: password, DeviceID: deviceID})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return resp
}

// resolve asks the userapi over the bus who a token belongs to.
func (e *env) resolve(t testing.TB, token string) *userapi.Device {
	t.Helper()
	resp, err := userapi.QueryAccessToken.Call(e.ctx, e.base.Bus, &userapi.QueryAccessTokenRequest{AccessToken: token})
	if err != nil {
		t.Fatalf("query access token: %v", err)
	}
	return resp.Device
}

func (e *env) logout(t testing.TB, req *userapi.LogoutRequest) {
	t.Helper()
	if _, err := userapi.Logout.Call(e.ctx, e.base.Bus, req); err != nil {
		t.Fatalf("logout: %v", err)
	}
}

// wantCode fails unless err is a Matrix error with the errcode.
func wantCode(t testing.TB, err error, code string) *mxerr.Error {
	t.Helper()
	me, ok := mxerr.As(err)
	if !ok {
		t.Fatalf("want %s, got %v", code, err)
	}
	if me.Code != code {
		t.Fatalf("want %s, got %s (%s)", code, me.Code, me.Message)
	}
	return me
}

// eventually polls cond until it holds or two seconds pass; for effects
// that cross NATS asynchronously (revocation messages). Two seconds is far
// below the caches' 30 s TTL, so expiry cannot pass for invalidation.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 2s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
