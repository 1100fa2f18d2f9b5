package tests

import (
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"

	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

func TestMediaAdminQuarantineAndDelete(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	admin := registerLimitsAdmin(t, srv, "root")
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")
	a1 := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, []byte("one"), "text/plain"))
	a2 := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, mediatest.Encode(t, "image/png", mediatest.Gradient(200, 200)), "image/png"))
	shared := must[*mautrix.RespMediaUpload](t)(bob.UploadBytes(ctx, []byte("one"), "text/plain")) // same content as a1
	must[*httpResponse](t)(thumb(ctx, alice, a2, 32, 32, "crop"))
	admin1 := srv.URL + "/_synapse/admin/v1"

	// Only admins.
	wantMediaErr(t, mediaDo(t, "POST", admin1+"/media/quarantine/localhost/"+a1.ContentURI.FileID, alice.AccessToken, "", nil), 403, "M_FORBIDDEN")
	wantMediaErr(t, mediaDo(t, "DELETE", admin1+"/users/@bob:localhost/media", alice.AccessToken, "", nil), 403, "M_FORBIDDEN")

	// Quarantine: downloads and thumbnails answer 404; unquarantine restores.
	if r := mediaDo(t, "POST", admin1+"/media/quarantine/localhost/"+a2.ContentURI.FileID, admin.AccessToken, "", nil); r.status != 200 {
		t.Fatalf("quarantine: %d %s", r.status, r.body)
	}
	_, err := bob.DownloadBytes(ctx, a2.ContentURI)
	wantErr(t, err, "M_NOT_FOUND", 404)
	_, err = thumb(ctx, bob, a2, 32, 32, "crop")
	wantErr(t, err, "M_NOT_FOUND", 404)
	wantMediaErr(t, mediaDo(t, "POST", admin1+"/media/quarantine/localhost/unknown", admin.AccessToken, "", nil), 404, "M_NOT_FOUND")
	mediaDo(t, "POST", admin1+"/media/unquarantine/localhost/"+a2.ContentURI.FileID, admin.AccessToken, "", nil)
	must[[]byte](t)(bob.DownloadBytes(ctx, a2.ContentURI))

	// Delete alice's media: her files go, bob's copy of the same content stays.
	filesBefore := storedBlobs(t, srv) // "one", the png, its thumbnail
	r := mediaDo(t, "DELETE", admin1+"/users/@alice:localhost/media", admin.AccessToken, "", nil)
	if r.status != 200 || r.json["total"] != float64(2) {
		t.Fatalf("delete user media: %d %s", r.status, r.body)
	}
	for _, up := range []*mautrix.RespMediaUpload{a1, a2} {
		_, err := bob.DownloadBytes(ctx, up.ContentURI)
		wantErr(t, err, "M_NOT_FOUND", 404)
	}
	if got := string(must[[]byte](t)(bob.DownloadBytes(ctx, shared.ContentURI))); got != "one" {
		t.Fatalf("shared content: %q", got)
	}
	if after := storedBlobs(t, srv); after != filesBefore-2 {
		t.Fatalf("files: %d before, %d after (want the png and its thumbnail gone)", filesBefore, after)
	}

	// Purge of the remote cache: nothing remote yet, so nothing goes.
	r = mediaDo(t, "POST", admin1+"/purge_media_cache?before_ts=99999999999999", admin.AccessToken, "", nil)
	if r.status != 200 || r.json["deleted"] != float64(0) {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	wantMediaErr(t, mediaDo(t, "POST", admin1+"/purge_media_cache", admin.AccessToken, "", nil), 400, "M_MISSING_PARAM")
}
