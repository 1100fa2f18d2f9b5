// Package config is Chappe's one YAML file. Every key has a default, so an
// empty file (or none) is a working embedded homeserver; Validate names the
// bad key and says why.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chappe-matrix/chappe/appservice/registration"
)

// Component names, as written under `components:`.
const (
	ComponentRoomserver = "roomserver"
	ComponentUserAPI    = "userapi"
	ComponentClientAPI  = "clientapi"
	ComponentSyncAPI    = "syncapi"
	ComponentMediaAPI   = "mediaapi"
	ComponentAppService = "appservice"
	ComponentFederation = "federation"
)

// AllComponents is what `chappe serve` runs when `components:` is empty.
var AllComponents = []string{ComponentRoomserver, ComponentUserAPI, ComponentClientAPI, ComponentSyncAPI, ComponentMediaAPI, ComponentAppService, ComponentFederation}

// Config is the whole file.
type Config struct {
	ServerName string `yaml:"server_name"`
	// DataDir holds the SQLite database, the embedded NATS store and the
	// signing key when their paths are relative.
	DataDir        string `yaml:"data_dir"`
	SigningKeyPath string `yaml:"signing_key_path"`
	// PublicBaseURL is what /.well-known/matrix/client advertises.
	PublicBaseURL string `yaml:"public_base_url"`

	Components []string `yaml:"components"`

	ClientAPI    ClientAPI    `yaml:"client_api"`
	Database     Database     `yaml:"database"`
	NATS         NATS         `yaml:"nats"`
	Registration Registration `yaml:"registration"`
	Rooms        Rooms        `yaml:"rooms"`
	Presence     Presence     `yaml:"presence"`
	E2EE         E2EE         `yaml:"e2ee"`
	RateLimits   RateLimits   `yaml:"rate_limits"`
	Media        Media        `yaml:"media"`
	Federation   Federation   `yaml:"federation"`
	Logging      Logging      `yaml:"logging"`
	TURN         TURN         `yaml:"turn"`
	Support      Support      `yaml:"support"`
	// AppServices lists application service registration files (relative
	// paths are relative to data_dir).
	AppServices []string `yaml:"app_services"`
}

// TURN is what /voip/turnServer hands to clients. With SharedSecret set,
// credentials follow the TURN REST API scheme (coturn's
// use-auth-secret); otherwise Username and Password are given as they are.
// No URIs: no TURN server is offered.
type TURN struct {
	URIs         []string      `yaml:"uris"`
	SharedSecret string        `yaml:"shared_secret"`
	UserLifetime time.Duration `yaml:"user_lifetime"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`
}

// Support is /.well-known/matrix/support; empty answers 404.
type Support struct {
	Contacts    []SupportContact `yaml:"contacts"`
	SupportPage string           `yaml:"support_page"`
}

type SupportContact struct {
	MatrixID     string `yaml:"matrix_id"`
	EmailAddress string `yaml:"email_address"`
	Role         string `yaml:"role"`
}

// Media configures the content repository (mediaapi).
type Media struct {
	// StoragePath holds the files (content-addressed), relative to data_dir.
	StoragePath string `yaml:"storage_path"`
	// MaxUploadBytes bounds one upload (413 M_TOO_LARGE above it).
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// UserQuotaBytes bounds what one user may store in total; 0 is no quota.
	UserQuotaBytes int64 `yaml:"user_quota_bytes"`
	// MaxPendingUploads bounds a user's created-but-unfilled mxc URIs.
	MaxPendingUploads int `yaml:"max_pending_uploads"`
	// UnusedExpiry is how long a created mxc URI waits for its content.
	UnusedExpiry time.Duration `yaml:"unused_expiry"`
	// LegacyUnauthenticated serves /_matrix/media/v3/download and
	// /thumbnail without an access token; off, they answer 404 (Synapse's
	// enable_authenticated_media freeze, for all media at once).
	LegacyUnauthenticated bool `yaml:"legacy_unauthenticated"`
	// LegacyUnauthenticatedUntil, with LegacyUnauthenticated off, keeps
	// media uploaded (or, remote, first fetched) before this instant
	// reachable on those endpoints without a token; newer media answers
	// 404 there. RFC 3339, or a date (midnight UTC); "" for none. This is
	// Synapse's freeze when enable_authenticated_media was turned on.
	LegacyUnauthenticatedUntil string `yaml:"legacy_unauthenticated_until"`
	// MaxThumbnailPixels: larger images are not decoded (decompression bombs).
	MaxThumbnailPixels int64           `yaml:"max_thumbnail_pixels"`
	ThumbnailSizes     []ThumbnailSize `yaml:"thumbnail_sizes"`
	URLPreview         URLPreview      `yaml:"url_preview"`
	// S3 keeps the files in an S3-compatible bucket instead of under
	// storage_path (which then only spools uploads).
	S3 MediaS3 `yaml:"s3"`
}

// LegacyFreeze parses LegacyUnauthenticatedUntil; ok is false when unset.
func (m Media) LegacyFreeze() (until time.Time, ok bool, err error) {
	s := m.LegacyUnauthenticatedUntil
	if s == "" {
		return time.Time{}, false, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, fmt.Errorf("%q is neither an RFC 3339 time nor a date (2006-01-02)", s)
}

// MediaS3 selects an S3-compatible object store (AWS, MinIO, Garage, Ceph
// RGW...) for media files; an empty Endpoint keeps the local store.
type MediaS3 struct {
	// Endpoint is the service's URL, https://s3.example.org (http:// for a
	// store on a trusted network).
	Endpoint  string `yaml:"endpoint"`
	Bucket    string `yaml:"bucket"`
	Region    string `yaml:"region"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PathStyle addresses the bucket as endpoint/bucket rather than as
	// bucket.endpoint (MinIO and most self-hosted stores need it).
	PathStyle bool `yaml:"path_style"`
	// Prefix is put before every object name ("chappe/"), so one bucket
	// can hold several servers' media.
	Prefix string `yaml:"prefix"`
}

// Enabled tells whether media goes to S3.
func (s MediaS3) Enabled() bool { return s.Endpoint != "" }

type ThumbnailSize struct {
	Width  int    `yaml:"width"`
	Height int    `yaml:"height"`
	Method string `yaml:"method"` // crop or scale
}

// URLPreview configures /preview_url, which makes the server fetch
// arbitrary URLs: off by default.
type URLPreview struct {
	Enabled bool `yaml:"enabled"`
	// AllowedCIDRs are private ranges previews may reach anyway (loopback,
	// RFC 1918, link-local... are refused otherwise).
	AllowedCIDRs []string      `yaml:"allowed_cidrs"`
	MaxBytes     int64         `yaml:"max_bytes"`
	Timeout      time.Duration `yaml:"timeout"`
	CacheTTL     time.Duration `yaml:"cache_ttl"`
}

type Presence struct {
	// Enabled shares online/offline status; Tchap turns it off.
	Enabled bool `yaml:"enabled"`
}

// RateLimits bounds how often one user (or, unauthenticated, one IP
// address) may act. Each action is a token bucket: PerSecond refills it,
// Burst is its size. Actions left out are not limited; server admins
// never are (internal/ratelimit).
type RateLimits struct {
	Enabled bool                 `yaml:"enabled"`
	Actions map[string]RateLimit `yaml:"actions"`
}

type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

type ClientAPI struct {
	Listen       string `yaml:"listen"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	// TrustedProxies are the reverse proxies (CIDRs) whose X-Forwarded-For
	// names the client, for per-IP rate limits.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MetricsListen serves /metrics on its own address; empty serves it on
	// the client listener.
	MetricsListen string `yaml:"metrics_listen"`
	// PprofListen serves net/http/pprof on its own address, for profiling;
	// empty (the default) serves nothing. Never expose it publicly.
	PprofListen string `yaml:"pprof_listen"`
}

type Database struct {
	// URL is postgres://... for PostgreSQL; empty means SQLite at
	// <data_dir>/chappe.db.
	URL          string `yaml:"url"`
	MaxOpenConns int    `yaml:"max_open_conns"`
}

type NATS struct {
	// URLs of an external NATS JetStream cluster; empty runs NATS in-process.
	URLs []string `yaml:"urls"`
	// Listen opens a TCP listener on the embedded server (off by default).
	Listen string `yaml:"listen"`
	// SubjectPrefix namespaces this homeserver's subjects and streams.
	SubjectPrefix string `yaml:"subject_prefix"`
	Replicas      int    `yaml:"replicas"`
	// SyncAlways fsyncs every JetStream message (embedded server only).
	SyncAlways bool `yaml:"sync_always"`
}

type Registration struct {
	// Enabled opens /register to anyone (with m.login.dummy). Off by default.
	Enabled bool `yaml:"enabled"`
	// SharedSecret enables /_synapse/admin/v1/register for operators' tools.
	SharedSecret string `yaml:"shared_secret"`
	// RequireToken makes open registration ask for a registration token
	// (m.login.registration_token) that an admin created, instead of
	// m.login.dummy.
	RequireToken bool `yaml:"require_token"`
	// RefreshableAccessTokenLifetime is how long an access token lives when
	// the client asked for a refresh token (Synapse's key of that name).
	RefreshableAccessTokenLifetime time.Duration `yaml:"refreshable_access_token_lifetime"`
	// RefreshTokenLifetime bounds a refresh token's life; 0 is unlimited.
	RefreshTokenLifetime time.Duration `yaml:"refresh_token_lifetime"`
}

type Rooms struct {
	DefaultVersion string `yaml:"default_version"`
}

type Logging struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Default returns the configuration of `chappe serve` with nothing set.
func Default() *Config {
	return &Config{
		ServerName:     "localhost",
		DataDir:        "./chappe-data",
		SigningKeyPath: "signing.key",
		ClientAPI:      ClientAPI{Listen: "127.0.0.1:8008", MaxBodyBytes: 10 << 20},
		Database:       Database{MaxOpenConns: 16},
		NATS:           NATS{Replicas: 1},
		Registration:   Registration{RefreshableAccessTokenLifetime: 5 * time.Minute},
		Rooms:          Rooms{DefaultVersion: "12"},
		Presence:       Presence{Enabled: true},
		E2EE:           E2EE{Default: true},
		RateLimits:     RateLimits{Enabled: true, Actions: DefaultRateLimits()},
		Media:          DefaultMedia(),
		Federation:     DefaultFederation(),
		Logging:        Logging{Level: "info", Format: "text"},
		TURN:           TURN{UserLifetime: time.Hour},
	}
}

// DefaultMedia is the media section with nothing set; the thumbnail sizes
// are the spec's (and Synapse's) recommendation.
func DefaultMedia() Media {
	return Media{
		StoragePath:        "media",
		MaxUploadBytes:     50 << 20,
		MaxPendingUploads:  10,
		UnusedExpiry:       24 * time.Hour,
		MaxThumbnailPixels: 32_000_000,
		ThumbnailSizes: []ThumbnailSize{
			{Width: 32, Height: 32, Method: "crop"},
			{Width: 96, Height: 96, Method: "crop"},
			{Width: 320, Height: 240, Method: "scale"},
			{Width: 640, Height: 480, Method: "scale"},
			{Width: 800, Height: 600, Method: "scale"},
		},
		URLPreview: URLPreview{MaxBytes: 10 << 20, Timeout: 10 * time.Second, CacheTTL: time.Hour},
	}
}

// DefaultRateLimits are the per-action limits when none are configured.
func DefaultRateLimits() map[string]RateLimit {
	return map[string]RateLimit{
		"login":        {PerSecond: 0.5, Burst: 5},
		"register":     {PerSecond: 0.2, Burst: 3},
		"message":      {PerSecond: 10, Burst: 50},
		"create_room":  {PerSecond: 0.5, Burst: 10},
		"invite":       {PerSecond: 1, Burst: 20},
		"join":         {PerSecond: 1, Burst: 20},
		"profile":      {PerSecond: 1, Burst: 10},
		"media_upload": {PerSecond: 2, Burst: 20},
	}
}

// Load reads a YAML file over the defaults. Unknown keys are errors, so a
// typo is named rather than silently ignored.
func Load(path string) (*Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// FieldError names a configuration key and what is wrong with it.
type FieldError struct {
	Key    string
	Reason string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Reason }

// Validate checks every key and returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Reason: fmt.Sprintf(format, args...)})
	}
	if c.ServerName == "" {
		bad("server_name", "must be set")
	} else if strings.ContainsAny(c.ServerName, " /@#!$") {
		bad("server_name", "%q is not a valid server name", c.ServerName)
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if c.ClientAPI.Listen == "" && c.Runs(ComponentClientAPI) {
		bad("client_api.listen", "must be set when clientapi runs")
	}
	for _, cidr := range c.ClientAPI.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			bad("client_api.trusted_proxies", "%q is not a CIDR (e.g. 10.0.0.0/8 or 192.0.2.1/32)", cidr)
		}
	}
	if c.ClientAPI.MaxBodyBytes < 1024 {
		bad("client_api.max_body_bytes", "must be at least 1024, got %d", c.ClientAPI.MaxBodyBytes)
	}
	if u := c.Database.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") &&
		!strings.HasPrefix(u, "sqlite://") && !strings.HasPrefix(u, "file:") {
		bad("database.url", "must start with postgres:// (or sqlite:// / file:), got %q", u)
	}
	if c.Database.MaxOpenConns < 1 {
		bad("database.max_open_conns", "must be at least 1")
	}
	for _, comp := range c.Components {
		if !slices.Contains(AllComponents, comp) {
			bad("components", "unknown component %q (known: %s)", comp, strings.Join(AllComponents, ", "))
		}
	}
	if len(c.Components) > 0 && len(c.NATS.URLs) == 0 && len(c.Components) < len(AllComponents) && c.NATS.Listen == "" {
		bad("components", "running a subset of components needs an external NATS (nats.urls) or nats.listen so the others can reach this process")
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		bad("nats.replicas", "must be between 1 and 5")
	}
	switch c.Rooms.DefaultVersion {
	case "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12":
	default:
		bad("rooms.default_version", "%q is not a supported room version (1 to 12)", c.Rooms.DefaultVersion)
	}
	c.validateMedia(bad)
	c.validateFederation(bad)
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("logging.level", "must be debug, info, warn or error")
	}
	switch c.Logging.Format {
	case "text", "json":
	default:
		bad("logging.format", "must be text or json")
	}
	if c.TURN.UserLifetime <= 0 {
		bad("turn.user_lifetime", "must be positive")
	}
	for i, ct := range c.Support.Contacts {
		if ct.MatrixID == "" && ct.EmailAddress == "" {
			bad(fmt.Sprintf("support.contacts[%d]", i), "needs matrix_id or email_address")
		}
		if ct.Role == "" {
			bad(fmt.Sprintf("support.contacts[%d].role", i), "must be set (m.role.admin, m.role.security or a namespaced role)")
		}
	}
	if len(c.AppServices) > 0 {
		if _, err := registration.Load(c.AppServicePaths()); err != nil {
			bad("app_services", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// AppServicePaths are the app_services files resolved against data_dir.
func (c *Config) AppServicePaths() []string {
	out := make([]string, len(c.AppServices))
	for i, p := range c.AppServices {
		out[i] = c.Path(p)
	}
	return out
}

// Runs tells whether this process runs the component.
func (c *Config) Runs(component string) bool {
	return len(c.Components) == 0 || slices.Contains(c.Components, component)
}

// Path resolves a path relative to the data directory.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.DataDir, p)
}

// DatabaseURL is the configured URL or the embedded SQLite file.
func (c *Config) DatabaseURL() string {
	if c.Database.URL != "" {
		return c.Database.URL
	}
	return "sqlite://" + c.Path("chappe.db")
}

// BaseURL is the client-facing URL advertised to clients.
func (c *Config) BaseURL() string {
	if c.PublicBaseURL != "" {
		return strings.TrimRight(c.PublicBaseURL, "/")
	}
	return "http://" + c.ClientAPI.Listen
}

func (c *Config) validateMedia(bad func(key, format string, args ...any)) {
	m := c.Media
	if m.StoragePath == "" {
		bad("media.storage_path", "must be set")
	}
	if m.MaxUploadBytes < 1 {
		bad("media.max_upload_bytes", "must be positive, got %d", m.MaxUploadBytes)
	}
	if m.UserQuotaBytes < 0 {
		bad("media.user_quota_bytes", "must be 0 (no quota) or positive, got %d", m.UserQuotaBytes)
	}
	if m.MaxPendingUploads < 1 {
		bad("media.max_pending_uploads", "must be at least 1")
	}
	if m.UnusedExpiry < time.Second {
		bad("media.unused_expiry", "must be at least 1s, got %s", m.UnusedExpiry)
	}
	if _, set, err := m.LegacyFreeze(); err != nil {
		bad("media.legacy_unauthenticated_until", "%v", err)
	} else if set && m.LegacyUnauthenticated {
		bad("media.legacy_unauthenticated_until", "has no effect while media.legacy_unauthenticated is true (all media is then served without a token): unset one")
	}
	if s := m.S3; s.Enabled() {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("media.s3.endpoint", "must be an http(s) URL with no path, e.g. https://s3.example.org, got %q", s.Endpoint)
		}
		if s.Bucket == "" {
			bad("media.s3.bucket", "must be set with media.s3.endpoint")
		}
		if strings.HasPrefix(s.Prefix, "/") {
			bad("media.s3.prefix", "must not start with /")
		}
	}
	if m.MaxThumbnailPixels < 1 {
		bad("media.max_thumbnail_pixels", "must be positive")
	}
	for i, s := range m.ThumbnailSizes {
		if s.Width < 1 || s.Height < 1 || s.Width > 4096 || s.Height > 4096 {
			bad("media.thumbnail_sizes", "entry %d: width and height must be between 1 and 4096", i)
		}
		if s.Method != "crop" && s.Method != "scale" {
			bad("media.thumbnail_sizes", "entry %d: method must be crop or scale, got %q", i, s.Method)
		}
	}
	p := m.URLPreview
	for _, cidr := range p.AllowedCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			bad("media.url_preview.allowed_cidrs", "%q is not a CIDR (e.g. 10.0.0.0/8)", cidr)
		}
	}
	if p.MaxBytes < 1024 {
		bad("media.url_preview.max_bytes", "must be at least 1024, got %d", p.MaxBytes)
	}
	if p.Timeout < time.Second {
		bad("media.url_preview.timeout", "must be at least 1s, got %s", p.Timeout)
	}
	if p.CacheTTL < 0 {
		bad("media.url_preview.cache_ttl", "must not be negative")
	}
}

// E2EE is advertised to clients in /.well-known/matrix/client as
// io.element.e2ee: SecureBackupRequired asks clients to make users set up
// key backup; Default is whether clients encrypt new rooms by default.
type E2EE struct {
	SecureBackupRequired bool `yaml:"secure_backup_required"`
	Default              bool `yaml:"default"`
}
