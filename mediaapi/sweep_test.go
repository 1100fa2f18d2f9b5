package mediaapi

import (
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
)

// Created but never filled mxc URIs are deleted once expired, and free
// their place under max_pending_uploads; filled ones are kept.
func TestExpiredPendingUploadsAreSwept(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, "local.test", func(c *config.Config) {
			c.Media.UnusedExpiry = time.Second
			c.Media.MaxPendingUploads = 2
		})
		ctx := ctxT(t)
		kept, err := h.alice.CreateMXC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("kept"), ContentType: "text/plain", MXC: kept.ContentURI}); err != nil {
			t.Fatal(err)
		}
		a, err := h.alice.CreateMXC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := h.alice.CreateMXC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.alice.CreateMXC(ctx); !errors.Is(err, mautrix.MLimitExceeded) {
			t.Fatalf("third pending upload: %v", err)
		}
		// Poll until the sweeper has deleted the two unfilled rows: the
		// test waits for the outcome, not for a duration.
		deadline := time.Now().Add(time.Minute)
		for {
			var n int
			if err := h.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ma_media WHERE media_id IN ($1, $2)`, a.ContentURI.FileID, b.ContentURI.FileID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d expired pending uploads still there", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		got, err := h.alice.DownloadBytes(ctx, kept.ContentURI)
		if err != nil || string(got) != "kept" {
			t.Fatalf("the filled upload: %q %v", got, err)
		}
		// Places are free again.
		for range 2 {
			if _, err := h.alice.CreateMXC(ctx); err != nil {
				t.Fatalf("create after the sweep: %v", err)
			}
		}
	})
}

func TestSweepEvery(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{time.Second: time.Second, 24 * time.Hour: time.Hour, 2 * time.Minute: 30 * time.Second} {
		if got := sweepEvery(in); got != want {
			t.Errorf("sweepEvery(%s) = %s, want %s", in, got, want)
		}
	}
}
