package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix"
)

// busySync: the receiver is in one quiet room with the sender and in
// --busy-rooms rooms where other users send without pause. The figure is
// the time from the start of a send into the quiet room to the return of
// the receiver's incremental /sync that carries it; the receiver keeps
// syncing, and its syncs also return for the busy rooms' events, as a
// real client's would.
func busySync(ctx context.Context, o options) ([]result, error) {
	sender, receiver, quietID, err := newPair(ctx, o, "busy-send", "busy-recv")
	if err != nil {
		return nil, err
	}
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var busyErr error
	var once sync.Once
	var sentBusy int64
	var mu sync.Mutex
	for b := range o.busyRooms {
		noisy, err := newUser(ctx, o, fmt.Sprintf("busy-noise%d", b))
		if err != nil {
			return nil, err
		}
		room, err := noisy.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			return nil, err
		}
		if _, err := receiver.JoinRoomByID(ctx, room.RoomID); err != nil {
			return nil, err
		}
		wg.Go(func() {
			for i := 0; bctx.Err() == nil; i++ {
				if _, err := noisy.SendText(bctx, room.RoomID, fmt.Sprintf("bruit %d", i)); err != nil {
					if bctx.Err() == nil {
						once.Do(func() { busyErr = err })
					}
					return
				}
				mu.Lock()
				sentBusy++
				mu.Unlock()
			}
		})
	}
	resp, err := receiver.SyncRequest(ctx, 0, "", "", false, "offline")
	if err != nil {
		return nil, err
	}
	since := resp.NextBatch
	samples := make([]time.Duration, 0, o.messages)
	sends := make([]time.Duration, 0, o.messages) // the send alone, to tell its queueing from the sync's
	syncs := 0
	start := time.Now()
	for i := range o.messages {
		type synced struct {
			resp *mautrix.RespSync
			err  error
			at   time.Time
		}
		done := make(chan synced, 1)
		syncFrom := func(since string) {
			go func() {
				r, err := receiver.SyncRequest(ctx, 30000, since, "", false, "offline")
				done <- synced{r, err, time.Now()}
			}()
		}
		syncFrom(since)
		t0 := time.Now()
		sent, err := sender.SendText(ctx, quietID, fmt.Sprintf("ping %d", i))
		if err != nil {
			return nil, err
		}
		sends = append(sends, time.Since(t0))
		for {
			s := <-done
			syncs++
			if s.err != nil {
				return nil, s.err
			}
			since = s.resp.NextBatch
			if hasEvent(s.resp, quietID, sent.EventID) {
				samples = append(samples, s.at.Sub(t0))
				break
			}
			syncFrom(since)
		}
	}
	elapsed := time.Since(start)
	stop()
	wg.Wait()
	if busyErr != nil && !errors.Is(busyErr, context.Canceled) {
		return nil, busyErr
	}
	r := summarise(fmt.Sprintf("send → sync, %d busy rooms", o.busyRooms), samples, 0)
	mu.Lock()
	sr := summarise("", sends, 0)
	r.Note = fmt.Sprintf("%.0f busy msg/s, %d syncs, send alone p50 %.1f ms", float64(sentBusy)/elapsed.Seconds(), syncs, sr.P50ms)
	mu.Unlock()
	return []result{r}, nil
}
