package main

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
)

// apiLatency measures single requests a client makes all day: /createRoom,
// /messages for a page of 100 events, and /context around an event.
func apiLatency(ctx context.Context, o options) ([]result, error) {
	alice, err := newUser(ctx, o, "api")
	if err != nil {
		return nil, err
	}
	const rounds = 50
	var create, messages, contexts []time.Duration
	for range rounds / 5 {
		t0 := time.Now()
		if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "bench"}); err != nil {
			return nil, err
		}
		create = append(create, time.Since(t0))
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		return nil, err
	}
	var middle *mautrix.RespSendEvent
	for i := range 300 {
		sent, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("history %d", i))
		if err != nil {
			return nil, err
		}
		if i == 150 {
			middle = sent
		}
	}
	for range rounds {
		t0 := time.Now()
		resp, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return nil, err
		}
		if len(resp.Chunk) != 100 {
			return nil, fmt.Errorf("/messages returned %d events, want 100", len(resp.Chunk))
		}
		messages = append(messages, time.Since(t0))
		t0 = time.Now()
		if _, err := alice.Context(ctx, room.RoomID, middle.EventID, nil, 10); err != nil {
			return nil, err
		}
		contexts = append(contexts, time.Since(t0))
	}
	return []result{
		summarise("createRoom", create, 0),
		summarise("/messages (100 events)", messages, 0),
		summarise("/context (limit 10)", contexts, 0),
	}, nil
}
