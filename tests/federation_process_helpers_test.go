package tests

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// buildChappeOrSkip compiles ./cmd/chappe, skipping the test when that is
// impossible here (no toolchain, tree mid-edit): the in-process federation
// tests cover the behaviour, this one only the deployment shape.
func buildChappeOrSkip(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chappe")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/chappe").CombinedOutput(); err != nil {
		t.Skipf("cannot build chappe: %v\n%s", err, out)
	}
	return bin
}

// startFederationProcesses runs one `chappe serve --config` child process
// per server name, federating with each other as NewFederation's servers
// do: TLS from a per-test CA, allowed_servers = the names, a host map to
// each other's federation port. The returned servers carry only URL and
// Config (enough for RegisterUser and fedUser).
func startFederationProcesses(t *testing.T, bin string, names ...string) []*testserver.Server {
	t.Helper()
	// The host map must be written before anyone starts, so the federation
	// ports are picked here rather than by the children.
	hostMap := map[string]string{}
	for _, name := range names {
		hostMap[name] = freeLocalAddr(t)
	}
	tls := testserver.FederationTLS(t)
	servers := make([]*testserver.Server, len(names))
	for i, name := range names {
		cfg := testserver.Config(t, func(c *config.Config) {
			c.ServerName = name
			f := &c.Federation
			f.Enabled = true
			f.Listen = hostMap[name]
			f.AllowedServers = append([]string(nil), names...)
			f.HostMap = hostMap
		}, tls)
		data, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(cfg.DataDir, "chappe.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		url, _ := startServe(t, bin, "--config", path)
		servers[i] = &testserver.Server{URL: url, Config: cfg}
	}
	return servers
}

// freeLocalAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeLocalAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
