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
)

// The sender posts notifications to push gateways. Jobs are kept in
// memory: a notification not yet delivered when the process stops is lost
// (its count is not; the next one carries it). A gateway that fails or
// answers 429 is retried with exponential back-off, other 4xx answers are
// final, and pushkeys the gateway rejects are removed.
const (
	pushWorkers       = 4
	pushQueueLen      = 10000
	pushBatchQueueLen = 1000
	pushTimeout       = 10 * time.Second
	pushMaxAttempts   = 10
	pushMaxBackoff    = 10 * time.Minute
	pushMaxEventAge   = time.Hour // older events (a replayed backlog) are counted, not pushed
	pushBodyMaxBytes  = 64 << 10
)

type pushSender struct {
	api     *SyncAPI
	client  *http.Client
	backoff time.Duration // first retry delay; doubles each attempt
	jobs    chan *pushJob
	batches chan []*pushedEvent // stored batches whose pushers are to be looked up
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
		batches: make(chan []*pushedEvent, pushBatchQueueLen),
		stop:    make(chan struct{}),
	}
	for range pushWorkers {
		p.wg.Add(1)
		go p.work()
	}
	p.wg.Add(1)
	go p.prepareLoop()
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

func (p *pushSender) prepareLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case b := <-p.batches:
			p.prepare(context.Background(), b)
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

// enqueue hands the notifications of a stored batch to the sender; the
// pushers are looked up and the requests built off the consumer's path.
// A batch that does not fit in the queue is dropped (and logged): the
// notifications are stored, only their pushes are lost.
func (p *pushSender) enqueue(done []*pushedEvent) {
	var fresh []*pushedEvent
	for _, pe := range done {
		if len(pe.notes) > 0 && time.Since(time.UnixMilli(pe.ts)) <= pushMaxEventAge {
			fresh = append(fresh, pe)
		}
	}
	if len(fresh) == 0 {
		return
	}
	select {
	case p.batches <- fresh:
	case <-p.stop:
	default:
		p.api.log.Warn("push: queue full, notifications not pushed", "events", len(fresh))
	}
}

// prepare builds the requests for the http pushers of the users a batch
// notifies. Reading pushers and counts is best effort: a failure is
// logged, the notifications are already stored.
func (p *pushSender) prepare(ctx context.Context, batch []*pushedEvent) {
	users := map[string]bool{}
	var list []string
	for _, pe := range batch {
		for _, n := range pe.notes {
			if !users[n.UserID] {
				users[n.UserID] = true
				list = append(list, n.UserID)
			}
		}
	}
	byUser := map[string][]pusherRow{}
	for len(list) > 0 {
		chunk := list[:min(len(list), maxInList)]
		list = list[len(chunk):]
		in, args := inList(1, chunk)
		ps, err := p.api.store.pushers(ctx, `kind = 'http' AND user_id IN (`+in+`)`, args...)
		if err != nil {
			p.api.log.Warn("push: reading pushers failed", "err", err)
			return
		}
		for _, ps := range ps {
			byUser[ps.UserID] = append(byUser[ps.UserID], ps)
		}
	}
	for _, pe := range batch {
		for _, n := range pe.notes {
			pushers := byUser[n.UserID]
			if len(pushers) == 0 {
				continue
			}
			unread, err := p.api.totalUnread(ctx, n.UserID)
			if err != nil {
				p.api.log.Warn("push: counting unread failed", "user", n.UserID, "err", err)
				continue
			}
			for _, ps := range pushers {
				body, gw, err := gatewayRequest(&ps, pe, &n, unread)
				if err != nil {
					p.api.log.Warn("push: bad pusher skipped", "user", n.UserID, "app_id", ps.AppID, "err", err)
					continue
				}
				p.put(&pushJob{pusher: ps, url: gw, body: body})
			}
		}
	}
}

// totalUnread is the user's unread notifications across rooms: the
// badge count the gateway shows.
func (s *SyncAPI) totalUnread(ctx context.Context, userID string) (int64, error) {
	var n int64
	if err := s.store.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(notify), 0) FROM sy_unread WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("unread count of %s: %w", userID, err)
	}
	return n, nil
}

// gatewayRequest builds the body of POST /_matrix/push/v1/notify for one
// pusher: event_id_only sends the IDs, counts and device; the full format
// adds the event itself and what a notification shows.
func gatewayRequest(ps *pusherRow, pe *pushedEvent, n *notification, unread int64) ([]byte, string, error) {
	ev, room := pe.ev, pe.room
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
		note["content"] = pe.content
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
