package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateMedia(t *testing.T) {
	bad := map[string]func(*Media){
		"media.unused_expiry":                func(m *Media) { m.UnusedExpiry = time.Millisecond },
		"media.legacy_unauthenticated_until": func(m *Media) { m.LegacyUnauthenticatedUntil = "yesterday" },
		"media.s3.endpoint":                  func(m *Media) { m.S3 = MediaS3{Endpoint: "s3.example.org", Bucket: "b"} },
		"media.s3.bucket":                    func(m *Media) { m.S3 = MediaS3{Endpoint: "https://s3.example.org"} },
	}
	bad["media.legacy_unauthenticated_until "] = func(m *Media) { // both set: one would be ignored
		m.LegacyUnauthenticated, m.LegacyUnauthenticatedUntil = true, "2025-01-01"
	}
	for key, mutate := range bad {
		c := Default()
		mutate(&c.Media)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(key)+":") {
			t.Errorf("%s: got %v", key, err)
		}
	}
	for _, until := range []string{"2025-06-01", "2025-06-01T12:00:00+02:00"} {
		c := Default()
		c.Media.LegacyUnauthenticatedUntil = until
		c.Media.S3 = MediaS3{Endpoint: "http://127.0.0.1:9000", Bucket: "media", PathStyle: true}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", until, err)
		}
		if at, ok, err := c.Media.LegacyFreeze(); !ok || err != nil || at.IsZero() {
			t.Errorf("%s: %v %v %v", until, at, ok, err)
		}
	}
	if got, _, _ := (Media{LegacyUnauthenticatedUntil: "2025-06-01"}).LegacyFreeze(); !got.Equal(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a date is midnight UTC: %v", got)
	}
}
