package tests

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/testserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// The E2EE figures of issue 5. Run with:
//
//	go test -tags goolm -run '^$' -bench 'KeysQuery|KeysClaim|ToDeviceFanout' -benchtime 5x ./tests/
//
// (on PostgreSQL and an external NATS too, with CHAPPE_TEST_POSTGRES and
// CHAPPE_TEST_NATS set). The set-up creates accounts and devices through
// the userapi on the bus (no password, so no bcrypt) and uploads keys over
// HTTP; each operation timed is one HTTP request, the client's encoding
// and decoding included.

// benchConcurrency bounds the set-up's concurrent requests.
const benchConcurrency = 16

var benchHTTP = &http.Client{
	Timeout:   5 * time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency * 2},
}

type benchDevice struct{ user, device, token string }

// benchDo makes a request and fails unless it answers 200.
func benchDo(tb testing.TB, method, url, token, body string) []byte {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := benchHTTP.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	return data
}

// parallel runs f(i) for i in [0, n) on benchConcurrency goroutines.
func parallel(tb testing.TB, n int, f func(i int) error) {
	tb.Helper()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range benchConcurrency {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

// benchUsers registers n users (prefix0 …) with one device each.
func benchUsers(tb testing.TB, srv *testserver.Server, prefix string, n int) []benchDevice {
	tb.Helper()
	out := make([]benchDevice, n)
	parallel(tb, n, func(i int) error {
		resp, err := userapi.Register.Call(context.Background(), srv.Base.Bus, &userapi.RegisterRequest{Localpart: fmt.Sprintf("%s%d", prefix, i)})
		if err != nil {
			return fmt.Errorf("register %s%d: %w", prefix, i, err)
		}
		out[i] = benchDevice{resp.UserID, resp.DeviceID, resp.AccessToken}
		return nil
	})
	return out
}

// benchDevices logs one user in n times (with login tokens, no bcrypt).
func benchDevices(tb testing.TB, srv *testserver.Server, userID string, n int) []benchDevice {
	tb.Helper()
	out := make([]benchDevice, n)
	ctx := context.Background()
	parallel(tb, n, func(i int) error {
		lt, err := userapi.CreateLoginToken.Call(ctx, srv.Base.Bus, &userapi.CreateLoginTokenRequest{UserID: userID})
		if err != nil {
			return fmt.Errorf("login token: %w", err)
		}
		resp, err := userapi.Login.Call(ctx, srv.Base.Bus, &userapi.LoginRequest{LoginToken: lt.LoginToken})
		if err != nil {
			return fmt.Errorf("login %d: %w", i, err)
		}
		out[i] = benchDevice{resp.UserID, resp.DeviceID, resp.AccessToken}
		return nil
	})
	return out
}

// benchDeviceKeys builds device keys signed by the device's ed25519 key.
func benchDeviceKeys(user, device string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	obj, _ := json.Marshal(map[string]any{
		"user_id": user, "device_id": device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + device: b64, "curve25519:" + device: b64},
	})
	signed, err := gomatrixserverlib.SignJSON(user, gomatrixserverlib.KeyID("ed25519:"+device), priv, obj)
	return string(signed), err
}

// benchUploadDeviceKeys uploads signed device keys for every device.
func benchUploadDeviceKeys(tb testing.TB, srv *testserver.Server, devs []benchDevice) {
	tb.Helper()
	parallel(tb, len(devs), func(i int) error {
		keys, err := benchDeviceKeys(devs[i].user, devs[i].device)
		if err != nil {
			return err
		}
		benchDo(tb, "POST", srv.URL+"/_matrix/client/v3/keys/upload", devs[i].token, `{"device_keys":`+keys+`}`)
		return nil
	})
}

// benchUploadOTKs uploads n (at most 100) one-time keys for every device,
// with IDs from round.
func benchUploadOTKs(tb testing.TB, srv *testserver.Server, devs []benchDevice, round, n int) {
	tb.Helper()
	parallel(tb, len(devs), func(i int) error {
		otks := make(map[string]any, n)
		for k := range n {
			otks[fmt.Sprintf("signed_curve25519:R%dK%d", round, k)] = map[string]string{"key": fmt.Sprintf("k%d.%d.%d", i, round, k)}
		}
		body, _ := json.Marshal(map[string]any{"one_time_keys": otks})
		benchDo(tb, "POST", srv.URL+"/_matrix/client/v3/keys/upload", devs[i].token, string(body))
		return nil
	})
}

func reportMS(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/1e6, "ms/op")
}

// One POST /keys/query for 1,000 users with one device (and keys) each.
func BenchmarkKeysQuery1000Users(b *testing.B) {
	srv := testserver.New(b)
	start := time.Now()
	devs := benchUsers(b, srv, "q", 1000)
	benchUploadDeviceKeys(b, srv, devs)
	b.Logf("set-up: 1,000 users with device keys in %v", time.Since(start).Round(time.Millisecond))
	asker := devs[0]
	query := map[string][]string{}
	for _, d := range devs {
		query[d.user] = []string{}
	}
	body, _ := json.Marshal(map[string]any{"device_keys": query})
	url := srv.URL + "/_matrix/client/v3/keys/query"

	var resp struct {
		DeviceKeys map[string]map[string]json.RawMessage `json:"device_keys"`
	}
	if err := json.Unmarshal(benchDo(b, "POST", url, asker.token, string(body)), &resp); err != nil {
		b.Fatal(err)
	}
	if len(resp.DeviceKeys) != 1000 {
		b.Fatalf("keys of %d users, want 1000", len(resp.DeviceKeys))
	}
	for u, ds := range resp.DeviceKeys {
		if len(ds) != 1 {
			b.Fatalf("%s: %d devices, want 1", u, len(ds))
		}
	}
	for b.Loop() {
		benchDo(b, "POST", url, asker.token, string(body))
	}
	reportMS(b)
}

// One POST /keys/claim of a one-time key from each of 100 devices.
func BenchmarkKeysClaim100Devices(b *testing.B) {
	srv := testserver.New(b)
	devs := benchUsers(b, srv, "c", 100)
	claimer := benchUsers(b, srv, "claimer", 1)[0]
	claim := map[string]map[string]string{}
	for _, d := range devs {
		claim[d.user] = map[string]string{d.device: "signed_curve25519"}
	}
	body, _ := json.Marshal(map[string]any{"one_time_keys": claim})
	url := srv.URL + "/_matrix/client/v3/keys/claim"
	const perRound = 100 // the most one upload may carry
	left, round, checked := 0, 0, false
	for b.Loop() {
		if left == 0 {
			b.StopTimer()
			benchUploadOTKs(b, srv, devs, round, perRound)
			round++
			left = perRound
			b.StartTimer()
		}
		data := benchDo(b, "POST", url, claimer.token, string(body))
		left--
		if !checked {
			b.StopTimer()
			var resp struct {
				OTKs map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
			}
			if err := json.Unmarshal(data, &resp); err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, ds := range resp.OTKs {
				for _, ks := range ds {
					n += len(ks)
				}
			}
			if n != len(devs) {
				b.Fatalf("claimed %d keys, want %d: %s", n, len(devs), data)
			}
			checked = true
			b.StartTimer()
		}
	}
	reportMS(b)
}

// One PUT /sendToDevice reaching 1,000 devices: "*" to one user's 1,000
// devices, and one message each to 1,000 users' devices.
func BenchmarkToDeviceFanout1000(b *testing.B) {
	srv := testserver.New(b)
	start := time.Now()
	sender := benchUsers(b, srv, "sender", 1)[0]
	target := benchUsers(b, srv, "many", 1)[0]
	devices := append([]benchDevice{target}, benchDevices(b, srv, target.user, 999)...)
	users := benchUsers(b, srv, "t", 1000)
	b.Logf("set-up: a user with %d devices and 1,000 users in %v", len(devices), time.Since(start).Round(time.Millisecond))
	content := map[string]any{"algorithm": "m.olm.v1.curve25519-aes-sha2", "ciphertext": strings.Repeat("x", 200)}

	txn := 0
	send := func(b *testing.B, messages map[string]map[string]any) {
		body, _ := json.Marshal(map[string]any{"messages": messages})
		for b.Loop() {
			txn++
			benchDo(b, "PUT", fmt.Sprintf("%s/_matrix/client/v3/sendToDevice/m.room.encrypted/bench%d", srv.URL, txn), sender.token, string(body))
		}
		reportMS(b)
	}
	b.Run("OneUser1000Devices", func(b *testing.B) {
		send(b, map[string]map[string]any{target.user: {"*": content}})
	})
	b.Run("1000Users", func(b *testing.B) {
		messages := map[string]map[string]any{}
		for _, u := range users {
			messages[u.user] = map[string]any{u.device: content}
		}
		send(b, messages)
	})
}
