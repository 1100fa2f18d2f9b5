package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

const testServer = "test.local"

// testEnv is a roomserver on an embedded bus and a fresh database.
type testEnv struct {
	t    testing.TB
	ctx  context.Context
	bus  *bus.Bus
	db   *sqlutil.DB
	base *base.Base
	rs   *Roomserver
}

// forEachBackend runs fn as a subtest per database.
func forEachBackend(t *testing.T, fn func(t *testing.T, env *testEnv)) {
	for _, backend := range sqltest.Backends() {
		t.Run(backend, func(t *testing.T) { fn(t, newTestEnv(t, backend)) })
	}
}

func newTestEnv(t testing.TB, backend string) *testEnv {
	t.Helper()
	ctx := context.Background()
	b := openTestBus(t)
	db := sqltest.Open(t, backend)
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.ServerName = testServer
	env := &testEnv{t: t, ctx: ctx, bus: b, db: db, base: &base.Base{
		Config: cfg, DB: db, Bus: b, Key: key, Log: quietLogger(), Metrics: prometheus.NewRegistry(),
	}}
	env.start()
	return env
}

func openTestBus(t testing.TB) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{StoreDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// restart stops the roomserver and its bus (which holds the endpoint
// subscriptions) and starts a new one on the same database.
func (e *testEnv) restart() {
	e.t.Helper()
	e.rs.Close()
	e.bus.Close()
	e.bus = openTestBus(e.t)
	e.base.Bus = e.bus
	e.start()
}

// start (re)starts the roomserver on the environment's bus and database.
func (e *testEnv) start() {
	e.t.Helper()
	rs, err := New(e.ctx, e.base)
	if err != nil {
		e.t.Fatalf("start roomserver: %v", err)
	}
	e.rs = rs
	e.t.Cleanup(rs.Close)
}

func quietLogger() *slog.Logger {
	if os.Getenv("CHAPPE_TEST_LOG") != "" {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func user(name string) string { return "@" + name + ":" + testServer }

func (e *testEnv) createRoom(req CreateRoomRequest) string {
	e.t.Helper()
	resp, err := CreateRoom.Call(e.ctx, e.bus, &req)
	if err != nil {
		e.t.Fatalf("create room: %v", err)
	}
	return resp.RoomID
}

func (e *testEnv) send(sender, roomID, eventType string, content any) (string, error) {
	resp, err := SendEvent.Call(e.ctx, e.bus, &SendEventRequest{Sender: sender, RoomID: roomID, Type: eventType, Content: mustJSON(content)})
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

func (e *testEnv) mustSend(sender, roomID, eventType string, content any) string {
	e.t.Helper()
	id, err := e.send(sender, roomID, eventType, content)
	if err != nil {
		e.t.Fatalf("send %s: %v", eventType, err)
	}
	return id
}

func (e *testEnv) sendState(sender, roomID, eventType, stateKey string, content any) (string, error) {
	resp, err := SendEvent.Call(e.ctx, e.bus, &SendEventRequest{
		Sender: sender, RoomID: roomID, Type: eventType, StateKey: &stateKey, Content: mustJSON(content),
	})
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

func (e *testEnv) member(sender, roomID, target, membership string) (string, error) {
	resp, err := Membership.Call(e.ctx, e.bus, &MembershipRequest{Sender: sender, RoomID: roomID, Target: target, Membership: membership})
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

func (e *testEnv) mustMember(sender, roomID, target, membership string) string {
	e.t.Helper()
	id, err := e.member(sender, roomID, target, membership)
	if err != nil {
		e.t.Fatalf("%s %s by %s: %v", membership, target, sender, err)
	}
	return id
}

func (e *testEnv) state(userID, roomID string) map[string]ClientEvent {
	e.t.Helper()
	resp, err := QueryState.Call(e.ctx, e.bus, &QueryStateRequest{UserID: userID, RoomID: roomID})
	if err != nil {
		e.t.Fatalf("query state: %v", err)
	}
	out := map[string]ClientEvent{}
	for _, ev := range resp.Events {
		out[ev.Type+"|"+*ev.StateKey] = ev
	}
	return out
}

// wantCode fails unless err is a Matrix error with the given errcode.
func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	me, ok := mxerr.As(err)
	if !ok {
		t.Fatalf("want %s, got %v", code, err)
	}
	if me.Code != code {
		t.Fatalf("want %s, got %s: %s", code, me.Code, me.Message)
	}
}

func decode(t testing.TB, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return m
}

// rawEvent reads an event's stored PDU.
func (e *testEnv) rawEvent(eventID string) map[string]any {
	e.t.Helper()
	var data []byte
	if err := e.db.QueryRowContext(e.ctx, `SELECT json FROM rs_events WHERE event_id = $1`, eventID).Scan(&data); err != nil {
		e.t.Fatalf("read event %s: %v", eventID, err)
	}
	return decode(e.t, data)
}

func versions() []string {
	out := make([]string, 12)
	for i := range out {
		out[i] = fmt.Sprint(i + 1)
	}
	return out
}
