package tests

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/synapseadmin"
)

// buildChappe compiles the binary once per test.
func buildChappe(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chappe")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/chappe").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServe runs `chappe serve` and returns the client URL it printed and
// a function that stops it gracefully (SIGINT) and waits.
func startServe(t *testing.T, bin string, args ...string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve"}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), "CHAPPE_TEST_POSTGRES=", "CHAPPE_TEST_NATS=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	found := make(chan string, 1)
	var log strings.Builder
	go func() {
		re := regexp.MustCompile(`Point a Matrix client at: (\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case url := <-found:
		return url, stop
	case <-time.After(30 * time.Second):
		t.Fatalf("chappe serve did not start:\n%s", log.String())
	}
	return "", stop
}

func runChappe(t *testing.T, bin string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// From nothing: `chappe serve` makes its data directory, key and commented
// configuration; a user made with the CLI and one registered through the
// shared secret talk.
func TestServeFromNothingAndCLI(t *testing.T) {
	bin := buildChappe(t)
	dataDir := filepath.Join(t.TempDir(), "data")

	url, stop := startServe(t, bin, "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	for _, f := range []string{"chappe.yaml", "signing.key", "chappe.db"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("first start did not create %s: %v", f, err)
		}
	}
	cfgPath := filepath.Join(dataDir, "chappe.yaml")
	if out, err := runChappe(t, bin, "", "config", "check", "--config", cfgPath); err != nil {
		t.Fatalf("config check of the generated file: %v\n%s", err, out)
	}
	if rawRequest(t, "GET", url+"/_matrix/client/versions", "", "").status != 200 {
		t.Fatal("/versions does not answer")
	}

	// The CLI creates a user while the server runs.
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runChappe(t, bin, "", "user", "create", "alice", "--admin", "--password-file", pwFile, "--data-dir", dataDir)
	if err != nil || !strings.Contains(out, "@alice:localhost") {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	out, err = runChappe(t, bin, "s3cret\n", "user", "create", "alice", "--data-dir", dataDir)
	if err == nil || !strings.Contains(out, "M_USER_IN_USE") {
		t.Fatalf("second create of alice: %v\n%s", err, out)
	}

	ctx := ctxT(t)
	alice, _ := mautrix.NewClient(url, "", "")
	must[*mautrix.RespLogin](t)(alice.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:   "correct horse", StoreCredentials: true,
	}))

	// Shared-secret registration is off until configured; turn it on.
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), `shared_secret: ""`, `shared_secret: "cli-test-secret"`, 1))
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("rooms:\n  default_version: \"99\"\n"), 0o600)
	if out, err := runChappe(t, bin, "", "config", "check", "--config", bad); err == nil || !strings.Contains(out, "rooms.default_version") {
		t.Fatalf("config check of a bad file: %v\n%s", err, out)
	}
	out, err = runChappe(t, bin, "", "keys", "generate")
	if err != nil || !strings.HasPrefix(out, "ed25519 a_") {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	if out, err := runChappe(t, bin, "", "version"); err != nil || !strings.HasPrefix(out, "chappe ") {
		t.Fatalf("version: %v\n%s", err, out)
	}
	// Restart on the same data directory with the secret set.
	stop()
	url2, _ := startServe(t, bin, "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	base, _ := mautrix.NewClient(url2, "", "")
	reg := must[*mautrix.RespRegister](t)((&synapseadmin.Client{Client: base}).SharedSecretRegister(ctx, "cli-test-secret",
		synapseadmin.ReqSharedSecretRegister{Username: "bob", Password: "bob-password"}))
	bob, _ := mautrix.NewClient(url2, reg.UserID, reg.AccessToken)
	alice.HomeserverURL = bob.HomeserverURL
	runConversation(t, alice, bob)
}
