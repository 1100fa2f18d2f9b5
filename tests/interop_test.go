//go:build goolm

package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// The E2EE interop test: matrix-js-sdk (the SDK behind Element) with its
// Rust crypto, run by Node from tests/interop/client.mjs, and a mautrix
// client with goolm share an encrypted room and each decrypts the other's
// message. Once with the room created by mautrix and joined by js-sdk
// (which logs in with a password), once the other way round (js-sdk
// registers through the shared-secret endpoint and creates the room).
//
// It needs node and tests/interop/node_modules (`npm ci --prefix
// tests/interop`); without them it skips, unless CHAPPE_REQUIRE_INTEROP=1
// (as in CI), where it fails.
func TestInteropJSSDK(t *testing.T) {
	node := interopNode(t)
	srv := testserver.New(t)

	t.Run("mautrix creates, js-sdk joins", func(t *testing.T) {
		alice := newCryptoClient(t, srv.RegisterUser(t, "alice"))
		bob := srv.RegisterUser(t, "bob").UserID
		ctx := ctxT(t)
		room := must[*mautrix.RespCreateRoom](t)(alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "private_chat",
			Invite: []id.UserID{bob},
			InitialState: []*event.Event{{
				Type:    event.StateEncryption,
				Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
			}},
		})).RoomID

		js := startInteropClient(t, node, "--homeserver", srv.URL,
			"--user", "bob", "--password", "password-bob",
			"--peer", alice.cli.UserID.String(), "--room", room.String(),
			"--send", "hello alice, from js-sdk", "--expect", "hello bob, from mautrix")
		ready := js.await(t, "ready")
		interopExchange(t, js, alice, room, bob, id.DeviceID(ready.DeviceID),
			"hello bob, from mautrix", "hello alice, from js-sdk")
	})

	t.Run("js-sdk creates, mautrix joins", func(t *testing.T) {
		carol := newCryptoClient(t, srv.RegisterUser(t, "carol"))
		js := startInteropClient(t, node, "--homeserver", srv.URL,
			"--register", "dave", "--shared-secret", testserver.SharedSecret,
			"--peer", carol.cli.UserID.String(),
			"--send", "hello carol, from js-sdk", "--expect", "hello dave, from mautrix")
		created := js.await(t, "room")
		room := id.RoomID(created.RoomID)
		if _, err := carol.cli.JoinRoomByID(ctxT(t), room); err != nil {
			t.Fatalf("carol joins the js-sdk's room: %v", err)
		}
		ss := carol.cli.StateStore.(*mautrix.MemoryStateStore)
		waitE2EE(t, "carol's client to see the room encrypted", func() bool {
			enc, _ := ss.IsEncrypted(context.Background(), room)
			return enc
		})
		ready := js.await(t, "ready")
		interopExchange(t, js, carol, room, id.UserID(ready.UserID), id.DeviceID(ready.DeviceID),
			"hello dave, from mautrix", "hello carol, from js-sdk")
	})
}

// interopExchange runs the mautrix side once the js-sdk client has joined
// and announced its device: mautrix learns the device, sends toJS, and
// decrypts fromJS; the js-sdk client decrypts toJS and exits 0.
func interopExchange(t *testing.T, js *interopClient, mx *cryptoClient, room id.RoomID, jsUser id.UserID, jsDevice id.DeviceID, toJS, fromJS string) {
	t.Helper()
	ss := mx.cli.StateStore.(*mautrix.MemoryStateStore)
	waitE2EE(t, "the mautrix client to see the js-sdk user joined", func() bool {
		m, _ := ss.GetMembership(context.Background(), room, jsUser)
		return m == event.MembershipJoin
	})
	// The js-sdk device's keys were on the server before it said ready:
	// sharing the session queries them (mautrix does not track users
	// it has not yet encrypted for).
	mx.send(t, room, []id.UserID{mx.cli.UserID, jsUser}, toJS)
	if !mx.knowsDevice(jsUser, jsDevice) {
		t.Fatalf("the mautrix client did not find the js-sdk device %s of %s", jsDevice, jsUser)
	}

	sent := js.await(t, "sent")
	if sent.Body != fromJS {
		t.Fatalf("js-sdk sent %q, want %q", sent.Body, fromJS)
	}
	mx.decrypted(t, room, fromJS) // mautrix reads js-sdk
	got := js.await(t, "decrypted")
	if got.Body != toJS || got.Sender != mx.cli.UserID.String() {
		t.Fatalf("js-sdk decrypted %q from %s, want %q from %s", got.Body, got.Sender, toJS, mx.cli.UserID)
	}
	js.exited(t) // js-sdk read mautrix
}

// interopNode returns the path of node, or skips (fails with
// CHAPPE_REQUIRE_INTEROP=1) when node or the npm packages are missing.
func interopNode(t *testing.T) string {
	t.Helper()
	missing := func(reason string) {
		t.Helper()
		if os.Getenv("CHAPPE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("CHAPPE_REQUIRE_INTEROP=1 but %s", reason)
		}
		t.Skip("js-sdk interop test skipped: " + reason)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH (Node 20 or later runs tests/interop)")
	}
	if _, err := os.Stat("interop/node_modules/matrix-js-sdk/package.json"); err != nil {
		missing("tests/interop/node_modules is missing: run `npm ci --prefix tests/interop`")
	}
	return node
}

// interopEvent is one `interop {json}` line of tests/interop/client.mjs.
type interopEvent struct {
	Event    string `json:"event"`
	RoomID   string `json:"room_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	EventID  string `json:"event_id"`
	Sender   string `json:"sender"`
	Body     string `json:"body"`
	Error    string `json:"error"`
}

type interopClient struct {
	events chan interopEvent
	done   chan struct{}
	err    error // the exit status, once done is closed

	mu     sync.Mutex
	output bytes.Buffer // standard error and stray standard output
}

// startInteropClient runs tests/interop/client.mjs with args; it is
// killed, if still running, when the test ends, and what it printed to
// standard error is logged.
func startInteropClient(t *testing.T, node string, args ...string) *interopClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, node, append([]string{"interop/client.mjs", "--timeout", "60"}, args...)...)
	c := &interopClient{events: make(chan interopEvent, 16), done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.output.Write(p)
	})
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "interop "); ok {
				var ev interopEvent
				if json.Unmarshal([]byte(rest), &ev) == nil {
					c.events <- ev
					continue
				}
			}
			c.mu.Lock()
			c.output.WriteString(line + "\n")
			c.mu.Unlock()
		}
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
		if out := c.stderr(); out != "" {
			t.Logf("js-sdk client output:\n%s", out)
		}
	})
	return c
}

func (c *interopClient) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.output.String()
}

// await waits for the client to say name, passing over what it said
// before; it fails when the client fails, exits or is silent for 70 s.
func (c *interopClient) await(t *testing.T, name string) interopEvent {
	t.Helper()
	timeout := time.After(70 * time.Second)
	for {
		var ev interopEvent
		select {
		case ev = <-c.events:
		case <-c.done:
			select {
			case ev = <-c.events: // said before exiting
			default:
				t.Fatalf("js-sdk client exited (%v) before saying %q\n%s", c.err, name, c.stderr())
			}
		case <-timeout:
			t.Fatalf("js-sdk client: no %q after 70s\n%s", name, c.stderr())
		}
		switch ev.Event {
		case name:
			return ev
		case "failed":
			t.Fatalf("js-sdk client failed: %s\n%s", ev.Error, c.stderr())
		}
	}
}

// exited waits for the client to exit, which must be with status 0.
func (c *interopClient) exited(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("js-sdk client did not exit\n%s", c.stderr())
	}
	if c.err != nil {
		t.Fatalf("js-sdk client exited with %v\n%s", c.err, c.stderr())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
