package mediaapi

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
	"github.com/chappe-matrix/chappe/userapi"
)

// harness is one MediaAPI on a real database (each backend of
// sqltest.Backends), behind the real router on an HTTP test server, with
// two users: alice, and an admin.
type harness struct {
	t     *testing.T
	api   *MediaAPI
	db    *sqlutil.DB
	cfg   *config.Config
	url   string
	alice *mautrix.Client
	admin *mautrix.Client
}

const (
	aliceToken = "alice-token"
	adminToken = "admin-token"
)

// eachBackend runs f on SQLite, and on PostgreSQL when configured.
func eachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	for _, backend := range sqltest.Backends() {
		t.Run(backend, func(t *testing.T) { f(t, backend) })
	}
}

// newHarness starts a MediaAPI serving serverName; adjust changes the
// default configuration first.
func newHarness(t *testing.T, backend, serverName string, adjust func(*config.Config)) *harness {
	t.Helper()
	cfg := config.Default()
	cfg.ServerName = serverName
	cfg.DataDir = t.TempDir()
	if adjust != nil {
		adjust(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	devices := map[string]*userapi.Device{
		aliceToken: {UserID: "@alice:" + serverName, DeviceID: "ALICE"},
		adminToken: {UserID: "@admin:" + serverName, DeviceID: "ADMIN", IsAdmin: true},
	}
	resolve := func(_ context.Context, token string) (*userapi.Device, error) { return devices[token], nil }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	router := httputil.NewRouter(log, resolve, 1<<20, prometheus.NewRegistry())
	db := sqltest.Open(t, backend)
	api, err := New(context.Background(), &base.Base{Config: cfg, DB: db, Log: log, Router: router})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	h := &harness{t: t, api: api, db: db, cfg: cfg, url: srv.URL}
	h.alice = h.client(aliceToken, "@alice:"+serverName)
	h.admin = h.client(adminToken, "@admin:"+serverName)
	return h
}

func (h *harness) client(token, userID string) *mautrix.Client {
	h.t.Helper()
	cli, err := mautrix.NewClient(h.url, id.UserID(userID), token)
	if err != nil {
		h.t.Fatal(err)
	}
	return cli
}

// get sends a GET with the token ("" for none) and reads the answer.
func (h *harness) get(path, token string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, body
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// countBlobs counts the files in the local store.
func countBlobs(t *testing.T, h *harness) int {
	t.Helper()
	n := 0
	root := filepath.Join(h.cfg.Path(h.cfg.Media.StoragePath), "blobs")
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
