package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Outbound requests. Every request to another server, the library
// client's (f.client) and ours (doSigned, doSignedRaw), goes through
// outbound.RoundTrip, which refuses a destination outside
// allowed_servers before anything is resolved or dialled, then finds the
// server through host_map or discovery (discovery.go) and speaks HTTPS
// with the system's authorities plus extra_ca_files.

// outbound is the transport of this server's federation requests.
type outbound struct {
	// allows tells whether a request may go to serverName at path.
	allows   func(serverName, path string) bool
	resolver *resolver
	roots    *x509.CertPool
	dialer   *net.Dialer
	http     *http.Client // raw requests; same transport and timeout as f.client
	stream   *http.Client // same transport, no overall timeout (media)

	mu         sync.Mutex
	hostMap    map[string]string
	transports map[string]*http.Transport // by TLS server name
}

func (f *Federation) startClient(context.Context) error {
	fc := f.cfg.Federation
	caFiles := make([]string, len(fc.ExtraCAFiles))
	for i, p := range fc.ExtraCAFiles {
		caFiles[i] = f.cfg.Path(p)
	}
	roots, err := loadRoots(caFiles)
	if err != nil {
		return err
	}
	notaries := make([]string, 0, len(fc.TrustedKeyServers))
	for _, ks := range fc.TrustedKeyServers {
		notaries = append(notaries, ks.ServerName)
	}
	o := &outbound{
		// A configured notary is asked for keys even when it is not in
		// allowed_servers (the operator named it), and for nothing else.
		allows: func(s, path string) bool {
			return f.cfg.FederationAllows(s) || (slices.Contains(notaries, s) && strings.HasPrefix(path, keyPrefix+"/"))
		},
		roots:  roots,
		dialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
	}
	o.SetHostMap(fc.HostMap)
	o.resolver = newResolver(&http.Client{
		Timeout:   10 * time.Second,
		Transport: o.transportFor(""),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" || len(via) >= 10 {
				return fmt.Errorf("well-known redirect to %s refused", req.URL)
			}
			return nil
		},
	})
	o.http = &http.Client{Transport: o, Timeout: fc.RequestTimeout}
	o.stream = &http.Client{Transport: o}
	f.out = o
	f.client = fclient.NewFederationClient(
		[]*fclient.SigningIdentity{{
			ServerName: spec.ServerName(f.serverName),
			KeyID:      gomatrixserverlib.KeyID(f.key.ID),
			PrivateKey: f.key.Private,
		}},
		fclient.WithTransport(o),
		fclient.WithTimeout(fc.RequestTimeout),
		fclient.WithUserAgent(userAgent()),
	)
	f.onClose(o.closeIdle)
	return nil
}

// Client is the federation client signing as this server (tests and
// tools; components go through fedapi).
func (f *Federation) Client() fclient.FederationClient { return f.client }

// loadRoots is the system pool plus the PEM files given.
func loadRoots(files []string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	for _, file := range files {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("federation.extra_ca_files: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("federation.extra_ca_files: %s holds no PEM certificate", file)
		}
	}
	return roots, nil
}

// SetHostMap replaces federation.host_map (server name -> host:port) while
// running: the test harness only knows the other servers' ports once they
// listen. Resolutions already cached by discovery are not affected, as a
// mapped server never reaches discovery.
func (f *Federation) SetHostMap(m map[string]string) { f.out.SetHostMap(m) }

// SetHostMap is Federation.SetHostMap.
func (o *outbound) SetHostMap(m map[string]string) {
	copied := make(map[string]string, len(m))
	for k, v := range m {
		copied[k] = v
	}
	o.mu.Lock()
	o.hostMap = copied
	o.mu.Unlock()
}

// RoundTrip sends a matrix://server/path (or matrix-federation://)
// request to the server's targets in turn.
func (o *outbound) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "matrix" && r.URL.Scheme != "matrix-federation" {
		return nil, fmt.Errorf("federation transport: unsupported scheme %q", r.URL.Scheme)
	}
	dest := r.URL.Host
	if !o.allows(dest, r.URL.Path) {
		closeBody(r)
		return nil, mxerr.Forbidden("server %s is not in federation.allowed_servers", dest)
	}
	targets, err := o.targets(r.Context(), dest)
	if err != nil {
		closeBody(r)
		return nil, fmt.Errorf("resolve %s: %w", dest, err)
	}
	var lastErr error
	for i, t := range targets {
		req := r.Clone(r.Context())
		req.URL.Scheme, req.URL.Host, req.Host = "https", t.addr, t.host
		if i > 0 {
			if r.Body != nil && r.GetBody == nil {
				break // the body is spent and cannot be read again
			}
			if r.GetBody != nil {
				if req.Body, err = r.GetBody(); err != nil {
					return nil, err
				}
			}
		}
		resp, err := o.transportFor(t.tlsName).RoundTrip(req)
		if err == nil {
			return resp, nil
		}
		lastErr = fmt.Errorf("%s via %s: %w", dest, t.addr, err)
	}
	o.resolver.forget(dest)
	return nil, lastErr
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// targets is the host_map entry, or what discovery finds. A mapped
// server's certificate must still be valid for its name.
func (o *outbound) targets(ctx context.Context, serverName string) ([]target, error) {
	o.mu.Lock()
	addr, mapped := o.hostMap[serverName]
	o.mu.Unlock()
	if mapped {
		host, _, _ := spec.ParseAndValidateServerName(spec.ServerName(serverName))
		return []target{{addr: addr, host: serverName, tlsName: strings.Trim(host, "[]")}}, nil
	}
	return o.resolver.resolve(ctx, serverName)
}

// transportFor is the HTTPS transport checking certificates for tlsName
// ("" for the request's own host, as for well-known). One transport per
// name: http.Transport cannot vary the TLS name per connection, and a
// connection verified for one server must not carry another's requests.
func (o *outbound) transportFor(tlsName string) *http.Transport {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.transports == nil {
		o.transports = map[string]*http.Transport{}
	}
	if t, ok := o.transports[tlsName]; ok {
		return t
	}
	t := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: o.dialer.DialContext,
		// An IP as ServerName is checked against the certificate's IP
		// addresses and sent without SNI, as the spec asks.
		TLSClientConfig:       &tls.Config{RootCAs: o.roots, ServerName: tlsName, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ExpectContinueTimeout: time.Second,
	}
	o.transports[tlsName] = t
	return t
}

func (o *outbound) closeIdle() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range o.transports {
		t.CloseIdleConnections()
	}
}

// doSignedRaw sends a request signed as this server (X-Matrix) and returns
// the response whatever its status; the caller closes its body. body nil
// sends none; otherwise it is encoded as JSON. The whole exchange, body
// included, must end within federation.request_timeout.
func (f *Federation) doSignedRaw(ctx context.Context, method, destination, path string, body any) (*http.Response, error) {
	return f.sendSigned(ctx, f.out.http, method, destination, path, body)
}

// doSignedStream is doSignedRaw for answers that may take longer to read
// than request_timeout (media): only ctx bounds it.
func (f *Federation) doSignedStream(ctx context.Context, method, destination, path string) (*http.Response, error) {
	return f.sendSigned(ctx, f.out.stream, method, destination, path, nil)
}

func (f *Federation) sendSigned(ctx context.Context, client *http.Client, method, destination, path string, body any) (*http.Response, error) {
	us := spec.ServerName(f.serverName)
	fr := fclient.NewFederationRequest(method, us, spec.ServerName(destination), path)
	if body != nil {
		if err := fr.SetContent(body); err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	if err := fr.Sign(us, gomatrixserverlib.KeyID(f.key.ID), f.key.Private); err != nil {
		return nil, fmt.Errorf("sign %s %s: %w", method, path, err)
	}
	req, err := fr.HTTPRequest()
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", userAgent())
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s %s on %s: %w", method, path, destination, err)
	}
	return resp, nil
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// doSigned sends a signed request and decodes a 2xx JSON answer into out
// (nil: ignored). Another status comes back as an error wrapping a
// *mxerr.Error with the remote's status, errcode and message.
func (f *Federation) doSigned(ctx context.Context, method, destination, path string, body, out any) error {
	resp, err := f.doSignedRaw(ctx, method, destination, path, body)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s on %s: %w", method, path, destination, remoteError(resp))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s on %s: decode answer: %w", method, path, destination, err)
	}
	return nil
}

// remoteError reads a non-2xx answer as a Matrix error.
func remoteError(resp *http.Response) *mxerr.Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Code    string `json:"errcode"`
		Message string `json:"error"`
	}
	if json.Unmarshal(data, &body) != nil || body.Code == "" {
		return mxerr.New(resp.StatusCode, "M_UNKNOWN", "remote answered %d: %.200s", resp.StatusCode, data)
	}
	return &mxerr.Error{Status: resp.StatusCode, Code: body.Code, Message: body.Message}
}

// userAgent names this implementation in requests and /version.
func userAgent() string { return "Chappe/" + version() }

// version is the module version of the binary ("devel" in builds from a
// work tree).
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}
