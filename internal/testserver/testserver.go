// Package testserver boots a whole Chappe homeserver inside a test: on a
// random port, with embedded NATS and SQLite in a temporary directory, or
// with PostgreSQL and an external NATS when CHAPPE_TEST_POSTGRES and
// CHAPPE_TEST_NATS are set (each server then gets its own schema and its
// own subject prefix, so tests never see each other's data).
package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // for creating and dropping test schemas
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/server"
	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

// SharedSecret is the registration secret of every test server.
const SharedSecret = "test-shared-secret"

// Server is a running test homeserver.
type Server struct {
	*server.Server
	URL    string
	Config *config.Config
}

// Option changes the test server's configuration before it starts.
type Option func(*config.Config)

// WithComponents runs only some components (the others must run in
// another process or test server sharing the database and NATS).
func WithComponents(components ...string) Option {
	return func(c *config.Config) { c.Components = components }
}

// Shared gives a second server the same database, NATS and data directory
// as an existing one, to split components across processes.
func Shared(other *Server) Option {
	return func(c *config.Config) {
		c.DataDir = other.Config.DataDir
		c.Database = other.Config.Database
		c.NATS = other.Config.NATS
		if len(c.NATS.URLs) == 0 && c.NATS.Listen != "" {
			// The other server runs NATS embedded: connect to it.
			c.NATS.URLs = []string{"nats://" + c.NATS.Listen}
			c.NATS.Listen = ""
		}
		c.ServerName = other.Config.ServerName
	}
}

// Config builds the configuration New would use, without starting.
func Config(t testing.TB, opts ...Option) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.ClientAPI.Listen = "127.0.0.1:0"
	cfg.Registration.SharedSecret = SharedSecret
	cfg.Logging.Level = "warn"
	cfg.RateLimits.Enabled = false // tests that need limits turn them on
	if pg := os.Getenv("CHAPPE_TEST_POSTGRES"); pg != "" {
		cfg.Database.URL = sqltest.PostgresSchema(t, pg)
	}
	if nats := os.Getenv("CHAPPE_TEST_NATS"); nats != "" {
		cfg.NATS.URLs = strings.Split(nats, ",")
		cfg.NATS.SubjectPrefix = "t" + randomHex(6)
		t.Cleanup(func() { deleteStreams(cfg) })
	}
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// New starts a homeserver and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return Start(t, Config(t, opts...))
}

// Start starts a homeserver with the given configuration.
func Start(t testing.TB, cfg *config.Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start test server: %v", err)
	}
	t.Cleanup(srv.Close)
	s := &Server{Server: srv, Config: cfg}
	if addr := srv.Addr(); addr != "" {
		s.URL = "http://" + addr
	}
	return s
}

// RegisterUser creates an account through the shared-secret endpoint and
// returns a logged-in mautrix client for it.
func (s *Server) RegisterUser(t testing.TB, localpart string) *mautrix.Client {
	t.Helper()
	base, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	admin := &synapseadmin.Client{Client: base}
	resp, err := admin.SharedSecretRegister(context.Background(), SharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: "password-" + localpart,
	})
	if err != nil {
		t.Fatalf("register %s: %v", localpart, err)
	}
	cli, err := mautrix.NewClient(s.URL, resp.UserID, resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	cli.DeviceID = resp.DeviceID
	return cli
}

// Client returns an unauthenticated client.
func (s *Server) Client(t testing.TB) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
