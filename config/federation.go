package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// Federation configures the server-server API (the federation component).
// Off by default: a ministry's server federates only once its operators
// have set its name, its TLS and whom it talks to.
type Federation struct {
	// Enabled runs the federation: its listener, the senders to other
	// servers, remote joins, keys and media. Off, remote users and rooms
	// are refused with M_FORBIDDEN.
	Enabled bool `yaml:"enabled"`
	// Listen is the federation listener (8448 by convention).
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files (relative to data_dir); empty serves
	// plain HTTP, for a TLS-terminating reverse proxy in front.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowedServers closes the federation: only these server names are
	// talked to and accepted, both ways. Empty: any server (open federation).
	AllowedServers []string `yaml:"allowed_servers"`
	// HostMap maps server names to host:port, before any discovery
	// (well-known, SRV): for closed networks without public DNS, and tests.
	HostMap map[string]string `yaml:"host_map"`
	// ExtraCAFiles are PEM files of certificate authorities trusted for
	// outbound federation besides the system's (a ministry's own PKI).
	ExtraCAFiles []string `yaml:"extra_ca_files"`
	// TrustedKeyServers are notaries asked for other servers' keys when
	// those cannot be fetched directly. Empty (Tchap's choice): keys are
	// only fetched from the servers themselves, or pinned below.
	TrustedKeyServers []KeyServer `yaml:"trusted_key_servers"`
	// PinnedKeys are other servers' verify keys known in advance: server
	// name -> key ID (ed25519:...) -> unpadded base64 public key. A pinned
	// server's keys are never fetched.
	PinnedKeys map[string]map[string]string `yaml:"pinned_keys"`
	// OldVerifyKeys are this server's previous keys, still published under
	// old_verify_keys so events they signed stay verifiable.
	OldVerifyKeys []OldVerifyKey `yaml:"old_verify_keys"`
	// KeyValidity is how long others may cache this server's key
	// (valid_until_ts in /_matrix/key/v2/server).
	KeyValidity time.Duration `yaml:"key_validity"`
	// WellKnownServer is what /.well-known/matrix/server delegates to
	// (host:port); empty answers 404.
	WellKnownServer string `yaml:"well_known_server"`
	// RequestTimeout bounds one outbound request.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// KeyServer is a notary (/_matrix/key/v2/query) and the keys its answers
// must be signed with.
type KeyServer struct {
	ServerName string            `yaml:"server_name"`
	VerifyKeys map[string]string `yaml:"verify_keys"` // key ID -> unpadded base64
}

// OldVerifyKey is a retired signing key of this server.
type OldVerifyKey struct {
	KeyID     string    `yaml:"key_id"`
	PublicKey string    `yaml:"public_key"` // unpadded base64
	ExpiredAt time.Time `yaml:"expired_at"`
}

// DefaultFederation is the federation section with nothing set.
func DefaultFederation() Federation {
	return Federation{
		Listen:         ":8448",
		KeyValidity:    24 * time.Hour,
		RequestTimeout: 30 * time.Second,
	}
}

// FederationAllows tells whether a server may be talked to: this server,
// or any server when allowed_servers is empty, or one of them.
func (c *Config) FederationAllows(serverName string) bool {
	if serverName == c.ServerName {
		return true
	}
	if len(c.Federation.AllowedServers) == 0 {
		return true
	}
	for _, s := range c.Federation.AllowedServers {
		if strings.EqualFold(s, serverName) {
			return true
		}
	}
	return false
}

func (c *Config) validateFederation(bad func(key, format string, args ...any)) {
	f := c.Federation
	if !f.Enabled {
		return
	}
	if f.Listen == "" && c.Runs(ComponentFederation) {
		bad("federation.listen", "must be set when federation is enabled")
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		bad("federation.tls_cert", "tls_cert and tls_key go together")
	}
	for name, addr := range f.HostMap {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("federation.host_map", "%s: %q is not host:port", name, addr)
		}
	}
	checkKey := func(key, keyID, b64 string) {
		if !strings.HasPrefix(keyID, "ed25519:") {
			bad(key, "key ID %q must start with ed25519:", keyID)
		}
		if raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil || len(raw) != ed25519.PublicKeySize {
			bad(key, "key %s is not an unpadded base64 ed25519 public key", keyID)
		}
	}
	for i, ks := range f.TrustedKeyServers {
		key := fmt.Sprintf("federation.trusted_key_servers[%d]", i)
		if ks.ServerName == "" {
			bad(key+".server_name", "must be set")
		}
		if len(ks.VerifyKeys) == 0 {
			bad(key+".verify_keys", "a notary's answers are only trusted with its keys")
		}
		for id, k := range ks.VerifyKeys {
			checkKey(key+".verify_keys", id, k)
		}
	}
	for server, keys := range f.PinnedKeys {
		for id, k := range keys {
			checkKey("federation.pinned_keys."+server, id, k)
		}
	}
	for i, k := range f.OldVerifyKeys {
		checkKey(fmt.Sprintf("federation.old_verify_keys[%d]", i), k.KeyID, k.PublicKey)
	}
	if f.KeyValidity < time.Hour {
		bad("federation.key_validity", "must be at least 1h, got %s", f.KeyValidity)
	}
	if f.RequestTimeout < time.Second {
		bad("federation.request_timeout", "must be at least 1s, got %s", f.RequestTimeout)
	}
}
