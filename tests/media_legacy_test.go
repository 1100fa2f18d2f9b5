package tests

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

// The authenticated-media freeze: media uploaded before
// media.legacy_unauthenticated_until stays reachable without a token on
// the legacy endpoints; media uploaded after is not (404, as with the
// endpoints off), and is on the authenticated ones.
func TestMediaLegacyFreezeByDate(t *testing.T) {
	cfg := testserver.Config(t)
	srv := testserver.Start(t, cfg)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	png := mediatest.Encode(t, "image/png", mediatest.Gradient(100, 100))
	old := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, png, "image/png"))
	// Off (the default): nothing without a token.
	wantMediaErr(t, mediaDo(t, "GET", srv.URL+"/_matrix/media/v3/download/localhost/"+old.ContentURI.FileID, "", "", nil), 404, "M_NOT_FOUND")
	srv.Close()

	// The operator freezes the legacy endpoints at the time of the restart.
	cfg.Media.LegacyUnauthenticatedUntil = time.Now().UTC().Format(time.RFC3339Nano)
	srv = testserver.Start(t, cfg)
	alice.HomeserverURL = must[*url.URL](t)(url.Parse(srv.URL))
	newer := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, png, "image/png"))

	legacy := srv.URL + "/_matrix/media/v3/"
	for _, path := range []string{"download/localhost/%s", "download/localhost/%s/name.png", "thumbnail/localhost/%s?width=32&height=32&method=crop"} {
		if r := mediaDo(t, "GET", legacy+fmt.Sprintf(path, old.ContentURI.FileID), "", "", nil); r.status != 200 {
			t.Errorf("%s of media from before the freeze: %d %s", path, r.status, r.body)
		}
		wantMediaErr(t, mediaDo(t, "GET", legacy+fmt.Sprintf(path, newer.ContentURI.FileID), "", "", nil), 404, "M_NOT_FOUND")
	}
	// The authenticated endpoints serve both.
	for _, up := range []*mautrix.RespMediaUpload{old, newer} {
		if _, err := alice.DownloadBytes(ctx, up.ContentURI); err != nil {
			t.Errorf("authenticated download of %s: %v", up.ContentURI, err)
		}
	}
}
