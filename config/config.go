// Package config is Chappe's one YAML file. Every key has a default, so an
// empty file (or none) is a working embedded homeserver; Validate names the
// bad key and says why.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Component names, as written under `components:`.
const (
	ComponentRoomserver = "roomserver"
	ComponentUserAPI    = "userapi"
	ComponentClientAPI  = "clientapi"
	ComponentSyncAPI    = "syncapi"
)

// AllComponents is what `chappe serve` runs when `components:` is empty.
var AllComponents = []string{ComponentRoomserver, ComponentUserAPI, ComponentClientAPI, ComponentSyncAPI}

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
	RateLimits   RateLimits   `yaml:"rate_limits"`
	Logging      Logging      `yaml:"logging"`
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
	// MetricsListen serves /metrics on its own address; empty serves it on
	// the client listener.
	MetricsListen string `yaml:"metrics_listen"`
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
		RateLimits:     RateLimits{Enabled: true, Actions: DefaultRateLimits()},
		Logging:        Logging{Level: "info", Format: "text"},
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
	return errors.Join(errs...)
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
