package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The sample written into new data directories must say what the defaults
// are: loading it must give exactly Default().
func TestSampleMatchesDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chappe.yaml")
	if err := os.WriteFile(path, []byte(Sample), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(got)
	b, _ := yaml.Marshal(Default())
	if string(a) != string(b) {
		t.Fatalf("sample differs from defaults:\n%s\nvs\n%s", a, b)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	cases := map[string]func(*Config){
		"database.url":              func(c *Config) { c.Database.URL = "mysql://x" },
		"components":                func(c *Config) { c.Components = []string{"roomserver", "nope"} },
		"rooms.default_version":     func(c *Config) { c.Rooms.DefaultVersion = "13" },
		"server_name":               func(c *Config) { c.ServerName = "" },
		"client_api.max_body_bytes": func(c *Config) { c.ClientAPI.MaxBodyBytes = 1 },
		"logging.level":             func(c *Config) { c.Logging.Level = "loud" },
	}
	for key, mutate := range cases {
		c := Default()
		mutate(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("%s: got %v", key, err)
		}
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chappe.yaml")
	if err := os.WriteFile(path, []byte("server_nam: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "server_nam") {
		t.Fatalf("expected the unknown key to be named, got %v", err)
	}
}
