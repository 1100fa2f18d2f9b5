package roomserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Many goroutines sending into one room produce one linear chain: every
// event's only prev_event is the event before it, positions strictly
// increase, nothing is lost.
func TestConcurrentSendsOneRoom(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice, Preset: presetPublic})
		const senders, each = 10, 40
		var wg sync.WaitGroup
		errs := make(chan error, senders*each)
		for s := range senders {
			u := user(fmt.Sprintf("u%d", s))
			env.mustMember(u, roomID, u, MembershipJoin)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := env.send(u, roomID, "m.room.message", map[string]any{"body": fmt.Sprint(i)}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("send: %v", err)
		}
		events, err := env.rs.Reader().Events(env.ctx, roomID, 0, 1<<60, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		messages := 0
		var prevID string
		var prevPos int64
		var prevDepth float64
		for i, ev := range events {
			raw := env.rawEvent(ev.Event.EventID)
			if ev.Pos <= prevPos {
				t.Fatalf("position %d after %d", ev.Pos, prevPos)
			}
			if i > 0 {
				prev := raw["prev_events"].([]any)
				if len(prev) != 1 || prevEventID(prev[0]) != prevID {
					t.Fatalf("event %d has prev_events %v, want [%s]", i, prev, prevID)
				}
				if raw["depth"].(float64) != prevDepth+1 {
					t.Fatalf("depth %v after %v", raw["depth"], prevDepth)
				}
			}
			prevID, prevPos, prevDepth = ev.Event.EventID, ev.Pos, raw["depth"].(float64)
			if ev.Event.Type == "m.room.message" {
				messages++
			}
		}
		if messages != senders*each {
			t.Fatalf("%d messages stored, want %d", messages, senders*each)
		}
	})
}

func prevEventID(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return v.([]any)[0].(string) // room versions 1 and 2: [id, hashes]
}

// The Output topic delivers every event once, in position order, across
// rooms written in parallel.
func TestOutputInPositionOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		var mu sync.Mutex
		var got []OutputEvent
		sub, err := Output.ConsumeDurable(env.ctx, env.bus, "test", func(_ context.Context, _ uint64, ev *OutputEvent) error {
			mu.Lock()
			got = append(got, *ev)
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		var wg sync.WaitGroup
		for r := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := user(fmt.Sprintf("owner%d", r))
				roomID := env.createRoom(CreateRoomRequest{Sender: u, RoomVersion: fmt.Sprint(9 + r)})
				for i := range 25 {
					env.mustSend(u, roomID, "m.room.message", map[string]any{"body": i})
				}
			}()
		}
		wg.Wait()
		want, _ := env.rs.Reader().MaxPos(env.ctx)
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if int64(n) >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if int64(len(got)) != want {
			t.Fatalf("%d output events, want %d", len(got), want)
		}
		for i, ev := range got {
			if ev.Pos != int64(i+1) {
				t.Fatalf("output %d has position %d", i, ev.Pos)
			}
			if ev.Type == "m.room.member" && ev.Membership != "join" {
				t.Fatalf("member event without membership: %+v", ev)
			}
			ce, err := ev.ClientEvent()
			if err != nil || ce.EventID != ev.EventID || ce.RoomID != ev.RoomID {
				t.Fatalf("client form of output: %+v %v", ce, err)
			}
		}
	})
}

// A restarted roomserver continues the rooms and the positions where the
// last one stopped.
func TestRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice})
		first := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "before"})
		before, _ := env.rs.Reader().MaxPos(env.ctx)
		env.restart()
		second := env.mustSend(alice, roomID, "m.room.message", map[string]string{"body": "after"})
		events, err := env.rs.Reader().Events(env.ctx, roomID, before-1, before+1, 0, false)
		if err != nil || len(events) != 2 || events[0].Event.EventID != first || events[1].Event.EventID != second {
			t.Fatalf("events across the restart: %+v %v", events, err)
		}
		if prev := env.rawEvent(second)["prev_events"].([]any); prevEventID(prev[0]) != first {
			t.Fatalf("the restarted head lost the extremity: %v", prev)
		}
	})
}

// Events committed but not published before a crash are republished at
// the next start.
func TestOutputCatchUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *testEnv) {
		alice := user("alice")
		roomID := env.createRoom(CreateRoomRequest{Sender: alice})
		for i := range 5 {
			env.mustSend(alice, roomID, "m.room.message", map[string]any{"body": i})
		}
		want, _ := env.rs.Reader().MaxPos(env.ctx)
		waitPublished := func(pos int64) {
			t.Helper()
			deadline := time.Now().Add(5 * time.Second)
			for {
				last, _, err := lastPublishedPos(env.ctx, env.bus)
				if err != nil {
					t.Fatal(err)
				}
				if last == pos {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("last published position %d, want %d", last, pos)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		waitPublished(want)
		// Simulate a crash that lost the last three publications.
		stream, err := env.bus.JS.Stream(env.ctx, env.bus.StreamName(Output.Stream))
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(env.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.LastSeq; seq > info.State.LastSeq-3; seq-- {
			if err := stream.DeleteMsg(env.ctx, seq); err != nil {
				t.Fatal(err)
			}
		}
		waitPublished(want - 3)
		if err := catchUp(env.ctx, env.db, env.bus, quietLogger()); err != nil {
			t.Fatal(err)
		}
		waitPublished(want)
	})
}
