package syncapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/chappe-matrix/chappe/roomserver"
)

// The sender posts notifications to push gateways. Jobs are kept in
// memory: a notification not yet delivered when the process stops is lost
// (its count is not; the next one carries it). A gateway that fails or
// answers 429 is retried with exponential back-off, other 4xx answers are
// final, and pushkeys the gateway rejects are removed.
const (
	pushWorkers      = 4
	pushQueueLen     = 10000
	pushTimeout      = 10 * time.Second
	pushMaxAttempts  = 10
	pushMaxBackoff   = 10 * time.Minute
	pushMaxEventAge  = time.Hour // older events (a replayed backlog) are counted, not pushed
	pushBodyMaxBytes = 64 << 10
)

type pushSender struct {
	api     *SyncAPI
	client  *http.Client
	backoff time.Duration // first retry delay; doubles each attempt
	jobs    chan *pushJob
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// pushJob is one request to one gateway: one pusher, one event.
type pushJob struct {
	pusher  pusherRow
	url     string
	body    []byte
	attempt int
}

func newPushSender(api *SyncAPI) *pushSender {
	p := &pushSender{
		api:     api,
		client:  &http.Client{Timeout: pushTimeout},
		backoff: time.Second,
		jobs:    make(chan *pushJob, pushQueueLen),
		stop:    make(chan struct{}),
	}
	for range pushWorkers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// Stop ends the workers; pending jobs are dropped.
func (p *pushSender) Stop() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *pushSender) work() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case j := <-p.jobs:
			p.send(j)
		}
	}
}

func (p *pushSender) put(j *pushJob) {
	select {
	case p.jobs <- j:
	case <-p.stop:
	default:
		p.api.log.Warn("push: queue full, notification dropped", "user", j.pusher.UserID, "app_id", j.pusher.AppID)
	}
}

// enqueue builds the requests for the http pushers of the notified users.
// Reading pushers and counts is best effort: a failure is logged, the
// notification is already stored.
func (p *pushSender) enqueue(ctx context.Context, ev *roomserver.OutputEvent, evt *event.Event, room *pushRoom, notes []notification) {
	if time.Since(time.UnixMilli(evt.Timestamp)) > pushMaxEventAge {
		return
	}
	for _, n := range notes {
		pushers, err := p.api.store.pushers(ctx, `user_id = $1 AND kind = 'http'`, n.UserID)
		if err != nil {
			p.api.log.Warn("push: reading pushers failed", "user", n.UserID, "err", err)
			continue
		}
		if len(pushers) == 0 {
			continue
		}
		unread, err := p.api.totalUnread(ctx, n.UserID)
		if err != nil {
			p.api.log.Warn("push: counting unread failed", "user", n.UserID, "err", err)
			continue
		}
		for _, ps := range pushers {
			body, gw, err := gatewayRequest(&ps, ev, evt, room, &n, unread)
			if err != nil {
				p.api.log.Warn("push: bad pusher skipped", "user", n.UserID, "app_id", ps.AppID, "err", err)
				continue
			}
			p.put(&pushJob{pusher: ps, url: gw, body: body})
		}
	}
}

// totalUnread is the user's unread notifications across rooms: the
// badge count the gateway shows.
func (s *SyncAPI) totalUnread(ctx context.Context, userID string) (int64, error) {
	counts, err := s.store.unreadCounts(ctx, userID, "", 1<<62)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range counts {
		n += c.Notify
	}
	return n, nil
}

// gatewayRequest builds the body of POST /_matrix/push/v1/notify for one
// pusher: event_id_only sends the IDs, counts and device; the full format
// adds the event itself and what a notification shows.
func gatewayRequest(ps *pusherRow, ev *roomserver.OutputEvent, evt *event.Event, room *pushRoom, n *notification, unread int64) ([]byte, string, error) {
	var data map[string]any
	if err := json.Unmarshal(ps.Data, &data); err != nil {
		return nil, "", fmt.Errorf("pusher data: %w", err)
	}
	gw, _ := data["url"].(string)
	delete(data, "url")
	tweaks := map[string]any{}
	for _, a := range n.Actions {
		var t struct {
			SetTweak string `json:"set_tweak"`
			Value    any    `json:"value"`
		}
		if json.Unmarshal(a, &t) == nil && t.SetTweak != "" {
			if t.Value == nil && t.SetTweak == "highlight" {
				t.Value = true
			}
			tweaks[t.SetTweak] = t.Value
		}
	}
	prio := "low"
	if n.Highlight || tweaks["sound"] != nil {
		prio = "high"
	}
	note := map[string]any{
		"event_id": ev.EventID,
		"room_id":  ev.RoomID,
		"prio":     prio,
		"counts":   map[string]any{"unread": unread},
		"devices": []any{map[string]any{
			"app_id": ps.AppID, "pushkey": ps.Pushkey, "pushkey_ts": ps.PushkeyTS, "data": data, "tweaks": tweaks,
		}},
	}
	if data["format"] != "event_id_only" {
		note["type"] = ev.Type
		note["sender"] = ev.Sender
		note["content"] = evt.Content.VeryRaw
		if name := room.displayName(ev.Sender); name != "" {
			note["sender_display_name"] = name
		}
		var rn struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(room.stateContent("m.room.name", ""), &rn) == nil && rn.Name != "" {
			note["room_name"] = rn.Name
		}
		if ev.StateKey != nil && *ev.StateKey == n.UserID {
			note["user_is_target"] = true
		}
	}
	body, err := json.Marshal(map[string]any{"notification": note})
	return body, gw, err
}

// send posts one job and schedules a retry when the gateway may accept it
// later.
func (p *pushSender) send(j *pushJob) {
	retry, rejected, err := p.post(j)
	log := p.api.log.With("user", j.pusher.UserID, "app_id", j.pusher.AppID, "attempt", j.attempt+1)
	ctx := context.Background()
	for _, key := range rejected {
		if key != j.pusher.Pushkey {
			continue
		}
		log.Info("push: gateway rejected the pushkey; pusher removed")
		if err := p.api.store.deletePusher(ctx, j.pusher.UserID, j.pusher.AppID, key); err != nil {
			log.Warn("push: removing rejected pusher failed", "err", err)
		}
	}
	if err == nil {
		return
	}
	if !retry || j.attempt+1 >= pushMaxAttempts {
		log.Warn("push: notification not delivered", "err", err)
		return
	}
	delay := min(p.backoff<<j.attempt, pushMaxBackoff)
	j.attempt++
	log.Info("push: gateway failed, retrying", "in", delay, "err", err)
	time.AfterFunc(delay, func() { p.put(j) })
}

// post sends the request. retry is true for network errors, 5xx and 429.
func (p *pushSender) post(j *pushJob) (retry bool, rejected []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, bytes.NewReader(j.body))
	if err != nil {
		return false, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return true, nil, fmt.Errorf("post to gateway: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, pushBodyMaxBytes))
	switch {
	case resp.StatusCode == http.StatusOK:
		var out struct {
			Rejected []string `json:"rejected"`
		}
		_ = json.Unmarshal(raw, &out)
		return false, out.Rejected, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, nil, fmt.Errorf("gateway answered %d", resp.StatusCode)
	default:
		return false, nil, fmt.Errorf("gateway answered %d", resp.StatusCode)
	}
}
