package federation

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// fakeDNS answers SRV lookups from a table ("_matrix-fed._tcp.host").
type fakeDNS map[string][]*net.SRV

func (d fakeDNS) lookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := fmt.Sprintf("_%s._%s.%s", service, proto, name)
	if recs, ok := d[key]; ok {
		return key, recs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

// wellKnownServer serves /.well-known/matrix/server per hostname (the
// Host header) from a table; every https://host request reaches it.
type wellKnownServer struct {
	files   map[string]string // hostname -> body ("" for 404)
	headers http.Header
	hits    atomic.Int32
}

func (w *wellKnownServer) start(t *testing.T) *http.Client {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.hits.Add(1)
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		body, ok := w.files[host]
		if !ok || r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(rw, r)
			return
		}
		for k, v := range w.headers {
			rw.Header()[k] = v
		}
		_, _ = rw.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.InsecureSkipVerify = true // the fake answers for every hostname
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	return client
}

func TestDiscovery(t *testing.T) {
	wk := &wellKnownServer{files: map[string]string{
		"delegating.test":      `{"m.server": "matrix.delegating.test:8443"}`,
		"delegating-ip.test":   `{"m.server": "10.0.0.7"}`,
		"delegating-srv.test":  `{"m.server": "fed.delegating-srv.test"}`,
		"delegating-none.test": `{"m.server": "plain.delegating-none.test"}`,
		"bad-json.test":        `{"m.server": `,
		"bad-name.test":        `{"m.server": "not a name"}`,
	}}
	dns := fakeDNS{
		"_matrix-fed._tcp.fed.delegating-srv.test": {{Target: "host1.example.", Port: 8500}},
		"_matrix-fed._tcp.srv.test":                {{Target: "a.example.", Port: 1}, {Target: "b.example.", Port: 2}},
		"_matrix._tcp.legacy.test":                 {{Target: "old.example.", Port: 3}},
		"_matrix-fed._tcp.dot.test":                {{Target: ".", Port: 0}},
		"_matrix-fed._tcp.bad-json.test":           {{Target: "srv.bad-json.test.", Port: 4}},
	}
	r := newResolver(wk.start(t))
	r.lookupSRV = dns.lookupSRV

	cases := []struct {
		name string
		want []target
	}{
		{"1.2.3.4", []target{{"1.2.3.4:8448", "1.2.3.4", "1.2.3.4"}}},
		{"1.2.3.4:99", []target{{"1.2.3.4:99", "1.2.3.4:99", "1.2.3.4"}}},
		{"[::1]", []target{{"[::1]:8448", "[::1]", "::1"}}},
		{"[::1]:99", []target{{"[::1]:99", "[::1]:99", "::1"}}},
		{"ported.test:1234", []target{{"ported.test:1234", "ported.test:1234", "ported.test"}}},
		// Delegation: the delegated name is used for Host and certificate.
		{"delegating.test", []target{{"matrix.delegating.test:8443", "matrix.delegating.test:8443", "matrix.delegating.test"}}},
		{"delegating-ip.test", []target{{"10.0.0.7:8448", "10.0.0.7", "10.0.0.7"}}},
		{"delegating-srv.test", []target{{"host1.example:8500", "fed.delegating-srv.test", "fed.delegating-srv.test"}}},
		{"delegating-none.test", []target{{"plain.delegating-none.test:8448", "plain.delegating-none.test", "plain.delegating-none.test"}}},
		// No well-known: SRV of the name itself, Host and certificate stay the name's.
		{"srv.test", []target{{"a.example:1", "srv.test", "srv.test"}, {"b.example:2", "srv.test", "srv.test"}}},
		{"legacy.test", []target{{"old.example:3", "legacy.test", "legacy.test"}}},
		{"dot.test", []target{{"dot.test:8448", "dot.test", "dot.test"}}},
		{"nothing.test", []target{{"nothing.test:8448", "nothing.test", "nothing.test"}}},
		// An invalid well-known is skipped, as if absent.
		{"bad-json.test", []target{{"srv.bad-json.test:4", "bad-json.test", "bad-json.test"}}},
		{"bad-name.test", []target{{"bad-name.test:8448", "bad-name.test", "bad-name.test"}}},
	}
	for _, c := range cases {
		got, err := r.resolve(context.Background(), c.name)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	if _, err := r.resolve(context.Background(), "bad name"); err == nil {
		t.Error("an invalid server name resolved")
	}
}

func TestWellKnownCache(t *testing.T) {
	wk := &wellKnownServer{
		files:   map[string]string{"cached.test": `{"m.server": "m.cached.test:1"}`},
		headers: http.Header{"Cache-Control": {"max-age=3600"}},
	}
	r := newResolver(wk.start(t))
	r.lookupSRV = fakeDNS{}.lookupSRV
	now := time.Now()
	r.now = func() time.Time { return now }

	for range 3 {
		if d := r.lookupWellKnown(context.Background(), "cached.test"); d != "m.cached.test:1" {
			t.Fatalf("delegation %q", d)
		}
		if d := r.lookupWellKnown(context.Background(), "missing.test"); d != "" {
			t.Fatalf("missing file delegated to %q", d)
		}
	}
	if n := wk.hits.Load(); n != 2 {
		t.Fatalf("%d fetches for 2 names asked 3 times each", n)
	}
	// The failure is forgotten after an hour, the answer after its max-age.
	now = now.Add(wellKnownErrorTTL + time.Second)
	r.lookupWellKnown(context.Background(), "missing.test")
	r.lookupWellKnown(context.Background(), "cached.test")
	if n := wk.hits.Load(); n != 4 {
		t.Fatalf("%d fetches after expiry, want 4", n)
	}
}

func TestWellKnownTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		header http.Header
		want   time.Duration
	}{
		{http.Header{}, 24 * time.Hour},
		{http.Header{"Cache-Control": {"public, max-age=600"}}, 10 * time.Minute},
		{http.Header{"Cache-Control": {"max-age=999999999"}}, 48 * time.Hour},
		{http.Header{"Cache-Control": {"no-store"}}, 0},
		{http.Header{"Expires": {now.Add(2 * time.Hour).Format(http.TimeFormat)}}, 2 * time.Hour},
		// max-age wins over Expires.
		{http.Header{"Expires": {now.Add(2 * time.Hour).Format(http.TimeFormat)}, "Cache-Control": {"max-age=60"}}, time.Minute},
		{http.Header{"Expires": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0},
	}
	for _, c := range cases {
		if got := wellKnownTTL(c.header, now); got != c.want {
			t.Errorf("%v: %v, want %v", c.header, got, c.want)
		}
	}
}

// The host map skips discovery; a server outside allowed_servers is
// refused before anything is resolved or dialled.
func TestOutboundTargets(t *testing.T) {
	var resolved atomic.Int32
	o := &outbound{
		allows: func(s, _ string) bool { return s != "outsider.test" },
		dialer: &net.Dialer{},
	}
	o.resolver = newResolver(http.DefaultClient)
	o.resolver.lookupSRV = func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
		resolved.Add(1)
		return fakeDNS{}.lookupSRV(ctx, service, proto, name)
	}
	o.SetHostMap(map[string]string{"mapped.test:8448": "127.0.0.1:1"})
	got, err := o.targets(context.Background(), "mapped.test:8448")
	if err != nil || !reflect.DeepEqual(got, []target{{"127.0.0.1:1", "mapped.test:8448", "mapped.test"}}) {
		t.Fatalf("mapped: %+v %v", got, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "matrix://outsider.test/_matrix/federation/v1/version", nil)
	if _, err := o.RoundTrip(req); err == nil {
		t.Fatal("request to a server outside the allow-list went out")
	} else if me, ok := mxerr.As(err); !ok || me.Code != "M_FORBIDDEN" {
		t.Fatalf("refusal: %v", err)
	}
	req, _ = http.NewRequest(http.MethodGet, "https://mapped.test/", nil)
	if _, err := o.RoundTrip(req); err == nil {
		t.Fatal("https:// accepted by the federation transport")
	}
	if resolved.Load() != 0 {
		t.Fatal("discovery ran")
	}
}
