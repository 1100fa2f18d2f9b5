package syncapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// harness is a SyncAPI on a real embedded bus, over an in-memory reader,
// behind the real router. It plays the roomserver: send stores an event in
// the reader and publishes it on the output stream.
type harness struct {
	t       *testing.T
	reader  *fakeReader
	bus     *bus.Bus
	api     *SyncAPI
	url     string
	devices map[string]*userapi.Device // access token → device
	nextID  atomic.Int64
	// noPresence turns presence.enabled off (newHarnessWith).
	noPresence bool
	// feed, when set, plays the commit feed of a roomserver in the same
	// process: send hands it each event too (feed_test.go).
	feed *fakeFeed
}

const (
	alice = "@alice:test"
	bob   = "@bob:test"
	carol = "@carol:test"
	dave  = "@dave:test"
)

// Access tokens of the harness's devices.
const (
	aliceTok  = "alice-token"
	alice2Tok = "alice-phone-token" // Alice's second device
	bobTok    = "bob-token"
	carolTok  = "carol-token"
	daveTok   = "dave-token"
)

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, false)
}

func newHarnessWith(t *testing.T, noPresence bool) *harness {
	t.Helper()
	return newHarnessOf(t, &harness{noPresence: noPresence})
}

// newHarnessOf starts the harness h describes (noPresence, feed).
func newHarnessOf(t *testing.T, h *harness) *harness {
	t.Helper()
	ctx := context.Background()
	h.t, h.reader = t, &fakeReader{}
	h.devices = map[string]*userapi.Device{
		aliceTok:  {UserID: alice, DeviceID: "ALICEDESK"},
		alice2Tok: {UserID: alice, DeviceID: "ALICEPHONE"},
		bobTok:    {UserID: bob, DeviceID: "BOB"},
		carolTok:  {UserID: carol, DeviceID: "CAROL"},
		daveTok:   {UserID: dave, DeviceID: "DAVE"},
	}

	b, err := bus.Open(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	h.bus = b
	if err := roomserver.Output.Ensure(ctx, b); err != nil {
		t.Fatal(err)
	}
	resolve := func(_ context.Context, token string) (*userapi.Device, error) { return h.devices[token], nil }
	router := httputil.NewRouter(slog.Default(), resolve, 1<<20, prometheus.NewRegistry())
	db, err := sqlutil.Open(ctx, filepath.Join(t.TempDir(), "sync.db"), sqlutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	// The roomserver's QueryEvent, which receipts use, answered from the
	// fake reader.
	err = roomserver.QueryEvent.Serve(b, func(_ context.Context, req *roomserver.QueryEventRequest) (*roomserver.QueryEventResponse, error) {
		if ev, pos, ok := h.reader.eventAt(req.RoomID, req.EventID); ok {
			return &roomserver.QueryEventResponse{Event: ev, Pos: pos}, nil
		}
		return nil, mxerr.NotFound("event %s not found", req.EventID)
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{ServerName: "test", Presence: config.Presence{Enabled: !h.noPresence}}
	var opts []Option
	if h.feed != nil {
		opts = append(opts, WithCommitFeed(h.feed))
	}
	api, err := New(ctx, &base.Base{Config: cfg, DB: db, Bus: b, Log: slog.Default(), Router: router}, h.reader, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	h.api = api
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// send stores an event and publishes it as the roomserver would; it
// returns the event's position.
func (h *harness) send(se roomserver.StreamEvent, membership string) int64 {
	h.t.Helper()
	ev := &se.Event
	ev.EventID = fmt.Sprintf("$ev%d", h.nextID.Add(1))
	ev.OriginServerTS = time.Now().UnixMilli() - 1000
	pos := h.reader.add(se, membership)
	out := &roomserver.OutputEvent{
		Pos: pos, RoomID: ev.RoomID, EventID: ev.EventID, Type: ev.Type, Sender: ev.Sender,
		StateKey: ev.StateKey, Membership: membership,
	}
	h.feed.hand(*out)
	if _, err := roomserver.Output.Publish(context.Background(), h.bus, out); err != nil {
		h.t.Fatal(err)
	}
	return pos
}

func (h *harness) state(roomID, sender, typ, stateKey string, content any) int64 {
	h.t.Helper()
	return h.send(roomserver.StreamEvent{Event: roomserver.ClientEvent{
		RoomID: roomID, Sender: sender, Type: typ, StateKey: &stateKey, Content: mustJSON(content),
	}}, "")
}

func (h *harness) member(roomID, sender, target, membership string) int64 {
	h.t.Helper()
	return h.send(roomserver.StreamEvent{Event: roomserver.ClientEvent{
		RoomID: roomID, Sender: sender, Type: "m.room.member", StateKey: &target,
		Content: mustJSON(map[string]string{"membership": membership}),
	}}, membership)
}

func (h *harness) message(roomID, sender, body string) int64 {
	h.t.Helper()
	return h.messageFrom(roomID, sender, "", "", body)
}

// messageFrom sends a message from a device with a transaction ID.
func (h *harness) messageFrom(roomID, sender, deviceID, txnID, body string) int64 {
	h.t.Helper()
	return h.send(roomserver.StreamEvent{
		Event: roomserver.ClientEvent{
			RoomID: roomID, Sender: sender, Type: "m.room.message",
			Content: mustJSON(map[string]string{"msgtype": "m.text", "body": body}),
		},
		SenderDeviceID: deviceID, TxnID: txnID,
	}, "")
}

// createRoom creates a room with five state events, creator joined.
func (h *harness) createRoom(roomID, creator, name string) {
	h.t.Helper()
	h.state(roomID, creator, "m.room.create", "", map[string]string{"room_version": "11"})
	h.member(roomID, creator, creator, "join")
	h.state(roomID, creator, "m.room.power_levels", "", map[string]any{"users": map[string]int{creator: 100}})
	h.state(roomID, creator, "m.room.join_rules", "", map[string]string{"join_rule": "invite"})
	h.state(roomID, creator, "m.room.name", "", map[string]string{"name": name})
}

// get sends a GET and returns the status and body.
func (h *harness) get(token, path string, q url.Values) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path+"?"+q.Encode(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, body
}

// sync calls /sync and decodes a successful response.
func (h *harness) sync(token string, q url.Values) *syncResponse {
	h.t.Helper()
	return getJSON[syncResponse](h, token, "/_matrix/client/v3/sync", q)
}

// messages calls /messages and decodes a successful response.
func (h *harness) messages(token, roomID string, q url.Values) *messagesResponse {
	h.t.Helper()
	return getJSON[messagesResponse](h, token, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages", q)
}

// getJSON sends a GET that must succeed and decodes its answer.
func getJSON[T any](h *harness, token, path string, q url.Values) *T {
	h.t.Helper()
	status, body := h.get(token, path, q)
	if status != http.StatusOK {
		h.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	resp := new(T)
	if err := json.Unmarshal(body, resp); err != nil {
		h.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return resp
}

// wantError checks a Matrix error response.
func wantError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e struct {
		Code string `json:"errcode"`
	}
	_ = json.Unmarshal(body, &e)
	if status != wantStatus || e.Code != wantCode {
		t.Fatalf("got %d %s, want %d %s", status, body, wantStatus, wantCode)
	}
}

// eventually polls cond until it holds; tests use it to wait for the
// notifier, which runs on its own goroutine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustJSON(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// bodies lists the bodies of the message events, and the types of the others.
func bodies(evs []roomserver.ClientEvent) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		var c struct {
			Body string `json:"body"`
		}
		if ev.Type == "m.room.message" && json.Unmarshal(ev.Content, &c) == nil {
			out = append(out, c.Body)
		} else {
			out = append(out, ev.Type)
		}
	}
	return out
}

func unsignedOf(t *testing.T, ev roomserver.ClientEvent) map[string]any {
	t.Helper()
	var u map[string]any
	if err := json.Unmarshal(ev.Unsigned, &u); err != nil {
		t.Fatalf("unsigned of %s: %v", ev.EventID, err)
	}
	return u
}
