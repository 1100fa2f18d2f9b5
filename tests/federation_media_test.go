package tests

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

// Media uploaded on one ministry's server is downloaded and thumbnailed by
// a user of another, through the federation media API; the second fetch
// comes from the cache; unknown remote media is 404.
func TestFederationRemoteMedia(t *testing.T) {
	ctx, a, alice, bob := twoMinistries(t)

	content := bytes.Repeat([]byte("chappe "), 200_000) // 1.4 MB
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, content, "application/pdf"))
	if up.ContentURI.Homeserver != fedA {
		t.Fatalf("uploaded to %s", up.ContentURI)
	}
	got := must[[]byte](t)(bob.DownloadBytes(ctx, up.ContentURI))
	if !bytes.Equal(got, content) {
		t.Fatalf("remote download: %d bytes, want %d", len(got), len(content))
	}
	// Cached on B: A is no longer needed.
	a.Close()
	got = must[[]byte](t)(bob.DownloadBytes(ctx, up.ContentURI))
	if !bytes.Equal(got, content) {
		t.Fatal("cached remote download differs")
	}

	// A is down now: an unknown item cannot be fetched.
	_, err := bob.DownloadBytes(ctx, id.ContentURI{Homeserver: fedA, FileID: "doesnotexist"})
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil || (httpErr.Response.StatusCode != http.StatusNotFound && httpErr.Response.StatusCode != http.StatusBadGateway) {
		t.Fatalf("unknown remote media while its server is down: %v", err)
	}
}

func TestFederationRemoteThumbnail(t *testing.T) {
	ctx, _, alice, bob := twoMinistries(t)
	img := mediatest.Encode(t, "image/png", mediatest.Gradient(640, 480))
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, img, "image/png"))
	resp, err := thumb(ctx, bob, up, 96, 96, "crop")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || len(resp.body) == 0 {
		t.Fatalf("remote thumbnail: status %d, %d bytes", resp.StatusCode, len(resp.body))
	}
	_, err = bob.DownloadBytes(ctx, id.ContentURI{Homeserver: fedA, FileID: "doesnotexist"})
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.RespError == nil || httpErr.RespError.ErrCode != "M_NOT_FOUND" {
		t.Fatalf("unknown remote media: %v", err)
	}
}

// twoMinistries starts ministere-a and ministere-b with alice on A and bob
// on B.
func twoMinistries(t *testing.T) (context.Context, *testserver.Server, *mautrix.Client, *mautrix.Client) {
	t.Helper()
	servers := testserver.NewFederation(t, fedA, fedB)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx, servers[0], servers[0].RegisterUser(t, "alice"), servers[1].RegisterUser(t, "bob")
}
