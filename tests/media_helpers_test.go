package tests

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// mediaResp is a raw HTTP answer of the media API.
type mediaResp struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

// mediaDo sends a raw request (token "" for none) and reads the answer.
func mediaDo(t *testing.T, method, url, token, contentType string, body io.Reader) mediaResp {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := mediaResp{status: resp.StatusCode, header: resp.Header, body: data}
	_ = json.Unmarshal(data, &r.json) // media answers are not all JSON
	return r
}

func (r mediaResp) errcode() string {
	s, _ := r.json["errcode"].(string)
	return s
}

func wantMediaErr(t *testing.T, r mediaResp, status int, code string) {
	t.Helper()
	if r.status != status || r.errcode() != code {
		t.Fatalf("want %d %s, got %d %s", status, code, r.status, r.body)
	}
}

// storedBlobs counts the files in the server's media store.
func storedBlobs(t *testing.T, srv *testserver.Server) int {
	t.Helper()
	n := 0
	root := srv.Config.Path(srv.Config.Media.StoragePath) + "/blobs"
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// httpResponse is a response with its body read.
type httpResponse struct {
	*http.Response
	body []byte
}

// thumb fetches a thumbnail through mautrix's client.
func thumb(ctx context.Context, cli *mautrix.Client, up *mautrix.RespMediaUpload, w, h int, method string) (*httpResponse, error) {
	resp, err := cli.DownloadThumbnail(ctx, up.ContentURI, h, w, mautrix.DownloadThumbnailExtra{Method: method})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return &httpResponse{Response: resp, body: body}, err
}
