package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/config"
)

// A federation of test servers: each has federation enabled on
// 127.0.0.1 with a TLS certificate for its name from a per-test CA,
// trusts that CA (extra_ca_files), allows the others (allowed_servers)
// and finds them through its host map.

// FederationMember describes one server of NewFederationOf.
type FederationMember struct {
	Name string
	// Outside keeps the server out of the others' allowed_servers; it
	// allows them all itself and knows where they are, so it can try.
	Outside bool
	// Options are applied after the federation settings.
	Options []Option
}

// NewFederation starts one homeserver per server name, all allowing each
// other, and stops them when the test ends.
func NewFederation(t testing.TB, names ...string) []*Server {
	t.Helper()
	members := make([]FederationMember, len(names))
	for i, n := range names {
		members[i] = FederationMember{Name: n}
	}
	return NewFederationOf(t, members...)
}

// NewFederationOf is NewFederation with per-server settings.
func NewFederationOf(t testing.TB, members ...FederationMember) []*Server {
	t.Helper()
	ca := newTestCA(t)
	var inside, all []string
	for _, m := range members {
		all = append(all, m.Name)
		if !m.Outside {
			inside = append(inside, m.Name)
		}
	}
	servers := make([]*Server, len(members))
	hostMap := map[string]string{}
	for i, m := range members {
		allowed := inside
		if m.Outside {
			allowed = all
		}
		opts := append([]Option{func(c *config.Config) {
			c.ServerName = m.Name
			f := &c.Federation
			f.Enabled = true
			f.Listen = "127.0.0.1:0"
			f.TLSCert, f.TLSKey = ca.issue(t, c.DataDir, m.Name)
			f.ExtraCAFiles = []string{ca.file}
			f.AllowedServers = append([]string(nil), allowed...)
		}}, m.Options...)
		servers[i] = New(t, opts...)
		hostMap[m.Name] = servers[i].FederationAddr()
	}
	// The ports are known only now: every server learns them at once.
	for _, s := range servers {
		if s.Server.Federation != nil {
			s.Server.Federation.SetHostMap(hostMap)
		}
	}
	return servers
}

// FederationAddr is the server's federation listener ("127.0.0.1:port"),
// "" when it does not federate.
func (s *Server) FederationAddr() string {
	if s.Server.Federation == nil {
		return ""
	}
	return s.Server.Federation.ListenAddr()
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "Chappe test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, file: file}
}

// issue writes a certificate for serverName (its host part as DNS name)
// and its key into dir, and returns their file names relative to dir.
func (ca *testCA) issue(t testing.TB, dir, serverName string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	host := serverName
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "federation.crt"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, "federation.key"), "PRIVATE KEY", keyDER)
	return "federation.crt", "federation.key"
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, file, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// FederationTLS is NewFederationOf's TLS for servers started another way
// (child processes): one CA per call; the Option gives a configuration
// (ServerName and DataDir already set) a certificate for its name and
// trust in that CA.
func FederationTLS(t testing.TB) Option {
	ca := newTestCA(t)
	return func(c *config.Config) {
		c.Federation.TLSCert, c.Federation.TLSKey = ca.issue(t, c.DataDir, c.ServerName)
		c.Federation.ExtraCAFiles = []string{ca.file}
	}
}
