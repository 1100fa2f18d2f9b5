package httputil

import (
	"net"
	"net/http"
	"testing"
)

func TestClientIPBelievesOnlyTrustedProxies(t *testing.T) {
	_, proxies, _ := net.ParseCIDR("10.0.0.0/8")
	trusted := []*net.IPNet{proxies}
	cases := []struct {
		name, peer, xff, want string
	}{
		{"direct client", "203.0.113.7:5000", "", "203.0.113.7"},
		{"untrusted peer cannot claim an address", "203.0.113.7:5000", "198.51.100.1", "203.0.113.7"},
		{"trusted proxy names the client", "10.1.2.3:5000", "198.51.100.1", "198.51.100.1"},
		{"client-set header before the proxy chain is skipped", "10.1.2.3:5000", "1.2.3.4, 198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"proxy without header", "10.1.2.3:5000", "", "10.1.2.3"},
		{"garbage hop", "10.1.2.3:5000", "not-an-ip", "not-an-ip"},
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.peer, Header: http.Header{}}
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientIP(&Request{Request: r}, trusted); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
