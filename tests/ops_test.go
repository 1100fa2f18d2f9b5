package tests

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// /health answers and /metrics exposes request latency per route, the
// database pool and the stream consumers' lag.
func TestHealthAndMetrics(t *testing.T) {
	srv := testserver.New(t)
	ctx := ctxT(t)
	alice := srv.RegisterUser(t, "alice")
	must[*mautrix.RespCreateRoom](t)(alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{}))

	health := rawRequest(t, "GET", srv.URL+"/health", "", "")
	if health.status != 200 || health.body["status"] != "ok" {
		t.Fatalf("/health = %+v", health)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`chappe_http_request_duration_seconds_count{route="POST /_matrix/client/v3/createRoom",status="200"} 1`,
		`chappe_db_open_connections`,
		`chappe_stream_consumer_pending{consumer="ordered-ROOM_OUTPUT",stream="ROOM_OUTPUT"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
