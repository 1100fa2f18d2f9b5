package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// sequentialSend: one user sends messages one after another into a room.
func sequentialSend(ctx context.Context, o options) ([]result, error) {
	alice, err := newUser(ctx, o, "seq")
	if err != nil {
		return nil, err
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		return nil, err
	}
	samples := make([]time.Duration, 0, o.messages)
	start := time.Now()
	for i := range o.messages {
		t0 := time.Now()
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("message %d", i)); err != nil {
			return nil, err
		}
		samples = append(samples, time.Since(t0))
	}
	return []result{summarise("send (sequential)", samples, time.Since(start))}, nil
}

// syncLatency: in each pair the receiver holds a waiting /sync; the
// sender sends; the figure is from the start of the send to the return of
// the receiver's sync with that event.
func syncLatency(ctx context.Context, o options) ([]result, error) {
	var mu sync.Mutex
	var all []time.Duration
	errs := make(chan error, o.pairs)
	var wg sync.WaitGroup
	for p := range o.pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			samples, err := onePair(ctx, o, p)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			all = append(all, samples...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return []result{summarise(fmt.Sprintf("send → waiting sync (%d pairs)", o.pairs), all, 0)}, nil
}

func onePair(ctx context.Context, o options, p int) ([]time.Duration, error) {
	sender, receiver, roomID, err := newPair(ctx, o, fmt.Sprintf("s%d", p), fmt.Sprintf("r%d", p))
	if err != nil {
		return nil, err
	}
	resp, err := receiver.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		return nil, err
	}
	since := resp.NextBatch
	samples := make([]time.Duration, 0, o.messages)
	for i := range o.messages {
		type synced struct {
			resp *mautrix.RespSync
			err  error
			at   time.Time
		}
		done := make(chan synced, 1)
		go func(since string) {
			r, err := receiver.SyncRequest(ctx, 30000, since, "", false, "")
			done <- synced{r, err, time.Now()}
		}(since)
		time.Sleep(5 * time.Millisecond) // let the sync reach the server and wait
		t0 := time.Now()
		sent, err := sender.SendText(ctx, roomID, fmt.Sprintf("ping %d", i))
		if err != nil {
			return nil, err
		}
		// The sync may return early with other activity: keep syncing
		// until the message is seen.
		for {
			s := <-done
			if s.err != nil {
				return nil, s.err
			}
			since = s.resp.NextBatch
			if hasEvent(s.resp, roomID, sent.EventID) {
				samples = append(samples, s.at.Sub(t0))
				break
			}
			go func(since string) {
				r, err := receiver.SyncRequest(ctx, 30000, since, "", false, "")
				done <- synced{r, err, time.Now()}
			}(since)
		}
	}
	return samples, nil
}

func hasEvent(resp *mautrix.RespSync, roomID id.RoomID, eventID id.EventID) bool {
	room, ok := resp.Rooms.Join[roomID]
	if !ok { // a sync woken by another room
		return false
	}
	for _, ev := range room.Timeline.Events {
		if ev.ID == eventID {
			return true
		}
	}
	return false
}

// roomThroughput: several users send into one room at once.
func roomThroughput(ctx context.Context, o options) ([]result, error) {
	var out []result
	for _, senders := range []int{1, o.senders} {
		r, err := throughputRun(ctx, o, senders)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func throughputRun(ctx context.Context, o options, senders int) (result, error) {
	owner, err := newUser(ctx, o, fmt.Sprintf("owner%d", senders))
	if err != nil {
		return result{}, err
	}
	room, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		return result{}, err
	}
	clients := []*mautrix.Client{owner}
	for i := 1; i < senders; i++ {
		c, err := newUser(ctx, o, fmt.Sprintf("t%d-%d", senders, i))
		if err != nil {
			return result{}, err
		}
		if _, err := c.JoinRoomByID(ctx, room.RoomID); err != nil {
			return result{}, err
		}
		clients = append(clients, c)
	}
	var mu sync.Mutex
	var samples []time.Duration
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if _, err := c.SendMessageEvent(ctx, room.RoomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": fmt.Sprint(i)}); err != nil {
					errs <- err
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	return summarise(fmt.Sprintf("one room, %d sender(s)", senders), samples, time.Since(start)), nil
}
