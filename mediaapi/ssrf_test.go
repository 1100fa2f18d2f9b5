package mediaapi

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

func TestAddressAllowed(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
		"0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
		"fc00::1", "fd12::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::",
	}
	for _, s := range refused {
		if addressAllowed(netip.MustParseAddr(s), nil) {
			t.Errorf("%s allowed", s)
		}
	}
	for _, s := range []string{"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "1.1.1.1"} {
		if !addressAllowed(netip.MustParseAddr(s), nil) {
			t.Errorf("%s refused", s)
		}
	}
	allowed := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if !addressAllowed(netip.MustParseAddr("127.0.0.1"), allowed) {
		t.Error("allowed_cidrs not honoured")
	}
	if addressAllowed(netip.MustParseAddr("10.0.0.1"), allowed) {
		t.Error("allowed_cidrs opened more than its range")
	}
}

func TestCheckPreviewURL(t *testing.T) {
	for _, raw := range []string{
		"http://127.0.0.1/", "http://10.0.0.5:8080/x", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
		"http://[::ffff:127.0.0.1]/", "ftp://example.org/", "file:///etc/passwd", "/relative", "http://user:pw@example.org/",
	} {
		_, err := checkPreviewURL(raw, nil)
		if err == nil {
			t.Errorf("%s accepted", raw)
			continue
		}
		if _, ok := mxerr.As(err); !ok {
			t.Errorf("%s: not a Matrix error: %v", raw, err)
		}
	}
	if _, err := checkPreviewURL("https://example.org/page#frag", nil); err != nil {
		t.Errorf("public URL refused: %v", err)
	}
}

// The dialer refuses a name that resolves to loopback: the check is on
// the address connected to, whatever the name.
func TestSafeClientRefusesLoopbackName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c := safeClient(nil, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, host := range []string{"localhost", "127.0.0.1"} {
		req, _ := newGet(ctx, "http://"+host+":"+itoa(port)+"/")
		_, err = c.Do(req)
		if !errors.Is(err, errBlockedAddress) {
			t.Errorf("%s: want errBlockedAddress, got %v", host, err)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("unexpected error text: %v", err)
	}
}
