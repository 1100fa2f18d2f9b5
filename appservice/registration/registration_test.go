package registration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNamespaces(t *testing.T) {
	p := write(t, "irc.yaml", `
id: irc
url: http://127.0.0.1:9000/
as_token: a
hs_token: h
sender_localpart: ircbot
de.sorunome.msc2409.push_ephemeral: true
namespaces:
  users: [{exclusive: true, regex: '@irc_.*:example\.org'}, {exclusive: false, regex: '@guest_.*'}]
  aliases: [{exclusive: true, regex: '#irc_.*'}]
  rooms: []
`)
	regs, err := Load([]string{p})
	if err != nil {
		t.Fatal(err)
	}
	r := regs[0]
	if r.BaseURL() != "http://127.0.0.1:9000" || !r.IsRateLimited() {
		t.Fatalf("url %q, rate limited %v", r.BaseURL(), r.IsRateLimited())
	}
	cases := []struct {
		user            string
		owns, exclusive bool
	}{
		{"@irc_bob:example.org", true, true},
		{"@guest_1:example.org", true, false},
		{"@ircbot:example.org", true, false},
		{"@x_irc_bob:example.org", false, false}, // anchored at the start
		{"@alice:example.org", false, false},
	}
	for _, c := range cases {
		if got := r.OwnsUser(c.user, "example.org"); got != c.owns {
			t.Errorf("OwnsUser(%s) = %v", c.user, got)
		}
		if got := r.ExclusiveUser(c.user); got != c.exclusive {
			t.Errorf("ExclusiveUser(%s) = %v", c.user, got)
		}
	}
	if !r.MatchesAlias("#irc_libera:example.org") || r.MatchesRoom("!x:example.org") {
		t.Error("alias or room namespaces wrong")
	}
	if !r.HasASToken("a") || r.HasASToken("h") {
		t.Error("as_token comparison wrong")
	}
}

func TestErrorsNameFileAndKey(t *testing.T) {
	p := write(t, "bad.yaml", "id: x\nas_token: t\nhs_token: t\nurl: ftp://x\nnamespaces: {users: [{regex: ''}]}\n")
	_, err := Load([]string{p})
	for _, want := range []string{p + ": hs_token:", p + ": sender_localpart:", p + ": url:", p + ": namespaces.users[0].regex:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
