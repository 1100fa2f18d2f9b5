package tests

import (
	"bytes"
	"crypto/rand"
	"image"
	"io"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
	"github.com/chappe-matrix/chappe/mediaapi/mediatest"
)

// With media.s3 set, files go to the bucket (an in-process S3 fake), not
// to storage_path, and everything works as with the local store:
// uploads, downloads with Range, thumbnails, deletion.
func TestMediaOnS3(t *testing.T) {
	s3 := mediatest.FakeS3(t)
	srv := testserver.New(t, func(c *config.Config) { c.Media.S3 = s3 })
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	bob := srv.RegisterUser(t, "bob")

	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	up := must[*mautrix.RespMediaUpload](t)(alice.UploadBytesWithName(ctx, data, "application/pdf", "rapport.pdf"))
	if got := must[[]byte](t)(bob.DownloadBytes(ctx, up.ContentURI)); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes", len(got))
	}
	if n := storedBlobs(t, srv); n != 0 {
		t.Fatalf("%d files in the local store", n)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/_matrix/client/v1/media/download/localhost/"+up.ContentURI.FileID, nil)
	req.Header.Set("Authorization", "Bearer "+bob.AccessToken)
	req.Header.Set("Range", "bytes=1000000-1000099")
	resp := must[*http.Response](t)(http.DefaultClient.Do(req))
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, data[1000000:1000100]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(part))
	}

	img := must[*mautrix.RespMediaUpload](t)(alice.UploadBytes(ctx, mediatest.Encode(t, "image/jpeg", mediatest.Gradient(1000, 500)), "image/jpeg"))
	th := must[*httpResponse](t)(thumb(ctx, alice, img, 320, 240, "scale"))
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(th.body)); err != nil || cfg.Width != 320 || cfg.Height != 160 {
		t.Fatalf("thumbnail: %d %dx%d %v", th.StatusCode, cfg.Width, cfg.Height, err)
	}

	admin := registerLimitsAdmin(t, srv, "root")
	r := mediaDo(t, "DELETE", srv.URL+"/_synapse/admin/v1/users/"+string(alice.UserID)+"/media", admin.AccessToken, "", nil)
	if r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantMediaErr(t, mediaDo(t, "GET", srv.URL+"/_matrix/client/v1/media/download/localhost/"+up.ContentURI.FileID, bob.AccessToken, "", nil), 404, "M_NOT_FOUND")
}
