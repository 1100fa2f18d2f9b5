package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Server discovery ("Resolving server names" in the server-server API):
// IP literals and explicit ports are used as they are; otherwise
// /.well-known/matrix/server may delegate to another name, then SRV
// records (_matrix-fed._tcp, then the deprecated _matrix._tcp) and
// finally port 8448. federation.host_map short-cuts all of it
// (client.go). The TLS certificate is checked for the name the spec
// says: the server's hostname, the delegated hostname after a
// well-known, never an SRV target.

// target is one place to send a server's requests.
type target struct {
	addr    string // host:port to dial
	host    string // Host header
	tlsName string // the certificate must be valid for it; SNI unless an IP
}

const (
	defaultFederationPort = 8448
	wellKnownMaxBytes     = 50 << 10
	// wellKnownDefaultTTL and wellKnownMaxTTL are the spec's
	// recommendations; failures are remembered for wellKnownErrorTTL.
	wellKnownDefaultTTL = 24 * time.Hour
	wellKnownMaxTTL     = 48 * time.Hour
	wellKnownErrorTTL   = time.Hour
	// resolvedTTL keeps a whole resolution (SRV answers included, whose
	// TTL Go's resolver does not give) before asking DNS again. A failure
	// to reach every target forgets it at once.
	resolvedTTL = 10 * time.Minute
)

// resolver finds where to send a server name's requests, caching
// well-known answers and resolutions.
type resolver struct {
	// lookupSRV is net.Resolver.LookupSRV (replaced in tests).
	lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	// http fetches https://<hostname>/.well-known/matrix/server.
	http *http.Client
	now  func() time.Time

	mu        sync.Mutex
	wellKnown map[string]cached[string] // hostname -> m.server ("" when none)
	resolved  map[string]cached[[]target]
}

type cached[T any] struct {
	value   T
	expires time.Time
}

func newResolver(httpClient *http.Client) *resolver {
	return &resolver{
		lookupSRV: net.DefaultResolver.LookupSRV,
		http:      httpClient,
		now:       time.Now,
		wellKnown: map[string]cached[string]{},
		resolved:  map[string]cached[[]target]{},
	}
}

// resolve lists the targets for serverName, best first.
func (r *resolver) resolve(ctx context.Context, serverName string) ([]target, error) {
	r.mu.Lock()
	c, ok := r.resolved[serverName]
	r.mu.Unlock()
	if ok && r.now().Before(c.expires) {
		return c.value, nil
	}
	targets, err := r.discover(ctx, serverName)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.resolved[serverName] = cached[[]target]{targets, r.now().Add(resolvedTTL)}
	r.mu.Unlock()
	return targets, nil
}

// forget drops a resolution whose targets all failed.
func (r *resolver) forget(serverName string) {
	r.mu.Lock()
	delete(r.resolved, serverName)
	r.mu.Unlock()
}

func (r *resolver) discover(ctx context.Context, serverName string) ([]target, error) {
	host, port, ok := spec.ParseAndValidateServerName(spec.ServerName(serverName))
	if !ok {
		return nil, fmt.Errorf("%q is not a valid server name", serverName)
	}
	// Steps 1 and 2: an IP literal, or an explicit port.
	if t, ok := literalTarget(serverName, host, port); ok {
		return []target{t}, nil
	}
	// Step 3: delegation by /.well-known/matrix/server.
	if delegated := r.lookupWellKnown(ctx, host); delegated != "" {
		dhost, dport, _ := spec.ParseAndValidateServerName(spec.ServerName(delegated))
		if t, ok := literalTarget(delegated, dhost, dport); ok {
			return []target{t}, nil
		}
		return r.srvOrDefault(ctx, dhost), nil
	}
	// Steps 4 to 6: SRV records of the hostname, else port 8448.
	return r.srvOrDefault(ctx, host), nil
}

// literalTarget is the target of a name that needs no lookup: an IP
// literal (port or 8448) or a hostname with a port.
func literalTarget(name, host string, port int) (target, bool) {
	ip := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(ip) != nil {
		if port < 0 {
			port = defaultFederationPort
		}
		return target{addr: net.JoinHostPort(ip, strconv.Itoa(port)), host: name, tlsName: ip}, true
	}
	if port >= 0 {
		return target{addr: net.JoinHostPort(host, strconv.Itoa(port)), host: name, tlsName: host}, true
	}
	return target{}, false
}

// srvOrDefault resolves _matrix-fed._tcp.host, then _matrix._tcp.host,
// else host:8448. The Host header and the certificate stay host's.
func (r *resolver) srvOrDefault(ctx context.Context, host string) []target {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, records, err := r.lookupSRV(ctx, service, "tcp", host)
		if err != nil {
			continue // not found, or DNS trouble: the next step may still work
		}
		var targets []target
		for _, rec := range records {
			name := strings.TrimSuffix(rec.Target, ".")
			if name == "" {
				continue // "." means the service is not offered there
			}
			targets = append(targets, target{addr: net.JoinHostPort(name, strconv.Itoa(int(rec.Port))), host: host, tlsName: host})
		}
		if len(targets) > 0 {
			return targets
		}
	}
	return []target{{addr: net.JoinHostPort(host, strconv.Itoa(defaultFederationPort)), host: host, tlsName: host}}
}

// lookupWellKnown is the m.server a hostname delegates to, "" when none
// (or when it could not be fetched: the caller goes on with SRV).
func (r *resolver) lookupWellKnown(ctx context.Context, hostname string) string {
	r.mu.Lock()
	c, ok := r.wellKnown[hostname]
	r.mu.Unlock()
	if ok && r.now().Before(c.expires) {
		return c.value
	}
	server, ttl, err := r.fetchWellKnown(ctx, hostname)
	if err != nil {
		if ctx.Err() != nil {
			return "" // the caller gave up: nothing learnt about the server
		}
		server, ttl = "", wellKnownErrorTTL
	}
	r.mu.Lock()
	r.wellKnown[hostname] = cached[string]{server, r.now().Add(ttl)}
	r.mu.Unlock()
	return server
}

var errNoWellKnown = errors.New("no valid /.well-known/matrix/server")

// fetchWellKnown GETs the file (redirects followed by the client, which
// stops loops) and returns its m.server with how long to keep it.
func (r *resolver) fetchWellKnown(ctx context.Context, hostname string) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+hostname+"/.well-known/matrix/server", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("%w: status %d", errNoWellKnown, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, wellKnownMaxBytes+1))
	if err != nil {
		return "", 0, err
	}
	if len(data) > wellKnownMaxBytes {
		return "", 0, fmt.Errorf("%w: over %d bytes", errNoWellKnown, wellKnownMaxBytes)
	}
	var body struct {
		Server string `json:"m.server"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return "", 0, fmt.Errorf("%w: %v", errNoWellKnown, err)
	}
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(body.Server)); !ok {
		return "", 0, fmt.Errorf("%w: m.server %q is not a server name", errNoWellKnown, body.Server)
	}
	return body.Server, wellKnownTTL(resp.Header, r.now()), nil
}

// wellKnownTTL reads Cache-Control max-age (preferred) or Expires, capped
// at 48 hours; 24 hours when neither says.
func wellKnownTTL(h http.Header, now time.Time) time.Duration {
	ttl := wellKnownDefaultTTL
	if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
		ttl = exp.Sub(now)
	}
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "max-age":
			if secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil {
				ttl = time.Duration(secs) * time.Second
			}
		case "no-store", "no-cache":
			ttl = 0
		}
	}
	return min(max(ttl, 0), wellKnownMaxTTL)
}
