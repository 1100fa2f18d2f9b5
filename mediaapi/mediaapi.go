package mediaapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/httputil"
)

// MediaAPI is the running component.
type MediaAPI struct {
	cfg        config.Media
	serverName string
	db         storage
	store      Store
	log        *slog.Logger

	// thumbSem bounds concurrent image decodes: a 32 Mpx image decodes to
	// 128 MB of RGBA, so a burst of thumbnail requests must queue rather
	// than multiply that.
	thumbSem chan struct{}
	// keyLocks serialises, per content key, storing a file and deleting
	// it when unreferenced, so a deletion cannot remove a file that a
	// concurrent deduplicated upload is about to reference (within one
	// process; see gc.go).
	keyLocks [64]sync.Mutex

	preview *previewer // nil when URL previews are off

	// freezeMS is media.legacy_unauthenticated_until in ms, 0 if unset.
	freezeMS int64

	fetcherMu sync.RWMutex
	fetcher   RemoteFetcher // nil: remote media is served from the cache only
	// flights makes concurrent requests for one remote item fetch it once.
	flights singleflight.Group

	stopSweep context.CancelFunc
	swept     sync.WaitGroup
}

// New migrates the ma_ tables, opens the store (media.s3 when set, else
// the local one under media.storage_path), registers the media routes and
// starts the sweep of expired pending uploads.
func New(ctx context.Context, b *base.Base) (*MediaAPI, error) {
	if err := b.DB.Migrate(ctx, "mediaapi", migrations); err != nil {
		return nil, err
	}
	store, err := openStore(ctx, b.Config)
	if err != nil {
		return nil, err
	}
	return newWithStore(b, store)
}

func openStore(ctx context.Context, cfg *config.Config) (Store, error) {
	root := cfg.Path(cfg.Media.StoragePath)
	if cfg.Media.S3.Enabled() {
		s, err := NewS3Store(ctx, cfg.Media.S3, filepath.Join(root, "tmp"))
		if err != nil {
			return nil, fmt.Errorf("media.s3: %w", err)
		}
		return s, nil
	}
	s, err := NewLocalStore(root)
	if err != nil {
		return nil, fmt.Errorf("media.storage_path: %w", err)
	}
	return s, nil
}

func newWithStore(b *base.Base, store Store) (*MediaAPI, error) {
	m := &MediaAPI{
		cfg:        b.Config.Media,
		serverName: b.Config.ServerName,
		db:         storage{db: b.DB},
		store:      store,
		log:        b.Log.With("component", "mediaapi"),
		thumbSem:   make(chan struct{}, 2),
	}
	until, set, err := m.cfg.LegacyFreeze()
	if err != nil {
		return nil, fmt.Errorf("media.legacy_unauthenticated_until: %w", err)
	}
	if set {
		m.freezeMS = until.UnixMilli()
	}
	if m.cfg.URLPreview.Enabled {
		var allowed []netip.Prefix
		for _, c := range m.cfg.URLPreview.AllowedCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("media.url_preview.allowed_cidrs: %w", err)
			}
			allowed = append(allowed, p.Masked())
		}
		m.preview = newPreviewer(m, allowed)
	}
	m.routes(b.Router)
	ctx, cancel := context.WithCancel(context.Background())
	m.stopSweep = cancel
	m.swept.Go(func() { m.sweep(ctx) })
	return m, nil
}

// Close stops the sweep; requests in flight end with the HTTP server.
func (m *MediaAPI) Close() {
	m.stopSweep()
	m.swept.Wait()
}

const (
	mediaV3  = "/_matrix/media/v3"
	clientV1 = "/_matrix/client/v1/media"
)

func (m *MediaAPI) routes(r *httputil.Router) {
	// Uploads carry their own body limit: client_api.max_body_bytes is
	// sized for JSON.
	limit := m.cfg.MaxUploadBytes
	r.HandleWithLimit("POST "+mediaV3+"/upload", httputil.RequireAuth, "media_upload", limit, m.upload)
	r.HandleLimited("POST /_matrix/media/v1/create", httputil.RequireAuth, "media_upload", m.create)
	r.HandleWithLimit("PUT "+mediaV3+"/upload/{serverName}/{mediaId}", httputil.RequireAuth, "media_upload", limit, m.uploadToMXC)

	r.Handle("GET "+clientV1+"/config", httputil.RequireAuth, m.config)
	r.Handle("GET "+mediaV3+"/config", httputil.RequireAuth, m.config)

	r.HandleRaw("GET "+clientV1+"/download/{serverName}/{mediaId}", httputil.RequireAuth, m.download(false))
	r.HandleRaw("GET "+clientV1+"/download/{serverName}/{mediaId}/{fileName}", httputil.RequireAuth, m.download(false))
	r.HandleRaw("GET "+clientV1+"/thumbnail/{serverName}/{mediaId}", httputil.RequireAuth, m.thumbnail(false))
	// The legacy unauthenticated endpoints (see access in download.go).
	r.HandleRaw("GET "+mediaV3+"/download/{serverName}/{mediaId}", httputil.NoAuth, m.download(true))
	r.HandleRaw("GET "+mediaV3+"/download/{serverName}/{mediaId}/{fileName}", httputil.NoAuth, m.download(true))
	r.HandleRaw("GET "+mediaV3+"/thumbnail/{serverName}/{mediaId}", httputil.NoAuth, m.thumbnail(true))

	r.Handle("GET "+clientV1+"/preview_url", httputil.RequireAuth, m.previewURL)
	r.Handle("GET "+mediaV3+"/preview_url", httputil.RequireAuth, m.previewURL)

	m.adminRoutes(r)
}

// config answers GET /media/config.
func (m *MediaAPI) config(*httputil.Request) (any, error) {
	return map[string]any{"m.upload.size": m.cfg.MaxUploadBytes}, nil
}

func nowMS() int64 { return time.Now().UnixMilli() }
