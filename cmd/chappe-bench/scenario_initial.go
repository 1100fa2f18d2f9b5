package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
)

// elementFilter is Element Web's /sync filter: lazy-loaded members, 20
// events per room.
const elementFilter = `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":20}}}`

// elementXRequiredState is Element X's room list required_state.
var elementXRequiredState = [][2]string{
	{"m.room.name", ""}, {"m.room.encryption", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"},
	{"m.room.topic", ""}, {"m.room.canonical_alias", ""}, {"m.room.power_levels", ""},
	{"org.matrix.msc3401.call.member", "*"}, {"m.room.join_rules", ""}, {"m.room.tombstone", ""},
	{"m.room.create", ""}, {"m.room.history_visibility", ""}, {"io.element.functional_members", ""},
	{"m.space.parent", "*"}, {"m.room.avatar", ""},
}

// slidingPath is simplified sliding sync's unstable endpoint.
const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// initialSync: a user in --rooms rooms of --members members each; the
// figures are one initial /sync with Element's filter and one first
// sliding sync request as Element X sends it, each repeated --repeat
// times (a fresh connection each time).
func initialSync(ctx context.Context, o options) ([]result, error) {
	d, err := buildDataset(ctx, o, "init")
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("%d rooms × %d members", o.rooms, o.members)
	out := []result{{Scenario: "dataset build (" + label + ")", Count: int(d.events), MaxMs: ms(d.built),
		PerSec: float64(d.events) / d.built.Seconds()}}
	var v2, ss []time.Duration
	var v2Bytes, ssBytes int
	for i := range max(o.repeat, 1) {
		t, n, err := timedGet(ctx, d.main, "/_matrix/client/v3/sync?filter="+url.QueryEscape(elementFilter)+"&set_presence=offline")
		if err != nil {
			return nil, fmt.Errorf("initial /sync: %w", err)
		}
		v2, v2Bytes = append(v2, t), n
		body := map[string]any{
			"conn_id": fmt.Sprintf("bench-%d", i),
			"lists": map[string]any{"all_rooms": map[string]any{
				"ranges": [][2]int{{0, 19}}, "timeline_limit": 1, "required_state": elementXRequiredState,
			}},
			"extensions": map[string]any{
				"account_data": map[string]any{"enabled": true},
				"receipts":     map[string]any{"enabled": true, "rooms": []string{"*"}},
				"typing":       map[string]any{"enabled": true, "rooms": []string{"*"}},
			},
		}
		t, n, err = timedPost(ctx, d.main, slidingPath+"?timeout=0", body)
		if err != nil {
			return nil, fmt.Errorf("sliding sync: %w", err)
		}
		ss, ssBytes = append(ss, t), n
	}
	r := summarise("initial /sync, Element filter ("+label+")", v2, 0)
	r.Bytes = v2Bytes
	out = append(out, r)
	r = summarise("sliding sync [0,19], Element X ("+label+")", ss, 0)
	r.Bytes = ssBytes
	out = append(out, r)
	return out, nil
}

// timedGet times a request to the full read of its body.
func timedGet(ctx context.Context, c *mautrix.Client, path string) (time.Duration, int, error) {
	return timed(ctx, c, http.MethodGet, path, nil)
}

func timedPost(ctx context.Context, c *mautrix.Client, path string, body any) (time.Duration, int, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, 0, err
	}
	return timed(ctx, c, http.MethodPost, path, data)
}

func timed(ctx context.Context, c *mautrix.Client, method, path string, body []byte) (time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.HomeserverURL.String(), "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	elapsed := time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, truncate(data))
	}
	return elapsed, len(data), nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// serverRSS reads the server's resident memory (VmRSS, in MB) when its
// process ID was given and it runs on this machine; 0 otherwise.
func serverRSS(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
