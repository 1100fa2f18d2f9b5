package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// TestSplitAcrossOSProcesses runs the roomserver and userapi in a real
// `chappe serve` child process and the client-facing components in this
// test process, sharing PostgreSQL and an external NATS, as a production
// deployment would.
func TestSplitAcrossOSProcesses(t *testing.T) {
	if os.Getenv("CHAPPE_TEST_POSTGRES") == "" || os.Getenv("CHAPPE_TEST_NATS") == "" {
		t.Skip("needs CHAPPE_TEST_POSTGRES and CHAPPE_TEST_NATS")
	}
	bin := filepath.Join(t.TempDir(), "chappe")
	build := exec.Command("go", "build", "-o", bin, "../cmd/chappe")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	backCfg := testserver.Config(t, testserver.WithComponents(config.ComponentRoomserver, config.ComponentUserAPI))
	data, err := yaml.Marshal(backCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(backCfg.DataDir, "back.yaml")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfgPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("back process output:\n%s", stderr.String())
		}
	})

	frontCfg := *backCfg
	frontCfg.Components = []string{config.ComponentClientAPI, config.ComponentSyncAPI}
	frontCfg.ClientAPI.Listen = "127.0.0.1:0"
	front := testserver.Start(t, &frontCfg)
	waitForBackend(t, front)
	runConversation(t, front.RegisterUser(t, "alice"), front.RegisterUser(t, "bob"))
}

// waitForBackend polls until the child process serves both its
// components: the userapi (the registration nonce) and the roomserver
// (the public room directory), which start one after the other.
func waitForBackend(t *testing.T, front *testserver.Server) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		users := rawRequest(t, "GET", front.URL+"/_synapse/admin/v1/register", "", "")
		rooms := rawRequest(t, "GET", front.URL+"/_matrix/client/v3/publicRooms", "", "")
		if users.status == 200 && rooms.status == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the roomserver/userapi process did not come up")
}
