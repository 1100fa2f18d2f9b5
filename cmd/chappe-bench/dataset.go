package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// dataset is a user (main) in rooms rooms of members members each, built
// through the client API only, so it runs against any homeserver.
type dataset struct {
	main    *mautrix.Client
	members []*mautrix.Client // main included, first
	rooms   []id.RoomID
	built   time.Duration
	events  int64
}

// buildDataset registers the users, has main create the rooms and the
// others join every room, then sends one message per room (so each room
// has recent activity). Work runs on o.workers goroutines; consecutive
// joins go to different rooms, so the server's per-room ordering does not
// serialise them.
func buildDataset(ctx context.Context, o options, name string) (*dataset, error) {
	start := time.Now()
	d := &dataset{members: make([]*mautrix.Client, o.members), rooms: make([]id.RoomID, o.rooms)}
	var events atomic.Int64
	progress := func(what string, done, total int) {
		fmt.Fprintf(os.Stderr, "\r%s: %s %d/%d (%s)   ", name, what, done, total, time.Since(start).Round(time.Second))
	}
	err := parallel(ctx, o.workers, o.members, func(i int) error {
		c, err := newUser(ctx, o, fmt.Sprintf("%s-u%d", name, i))
		d.members[i] = c
		return err
	}, func(n int) { progress("users", n, o.members) })
	if err != nil {
		return nil, err
	}
	d.main = d.members[0]
	err = parallel(ctx, o.workers, o.rooms, func(i int) error {
		r, err := d.main.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("Salle %d", i)})
		if err == nil {
			d.rooms[i] = r.RoomID
			events.Add(7) // create, member, power levels, join rules, history visibility, name, guest access
		}
		return err
	}, func(n int) { progress("rooms", n, o.rooms) })
	if err != nil {
		return nil, err
	}
	joins := (o.members - 1) * o.rooms
	err = parallel(ctx, o.workers, joins, func(k int) error {
		user, room := 1+k/o.rooms, k%o.rooms
		_, err := d.members[user].JoinRoomByID(ctx, d.rooms[room])
		events.Add(1)
		return err
	}, func(n int) { progress("joins", n, joins) })
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, o.workers, o.rooms, func(i int) error {
		sender := d.main
		if o.members > 1 {
			sender = d.members[1+i%(o.members-1)]
		}
		_, err := sender.SendText(ctx, d.rooms[i], fmt.Sprintf("bonjour de la salle %d", i))
		events.Add(1)
		return err
	}, func(n int) { progress("messages", n, o.rooms) })
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr)
	d.built, d.events = time.Since(start), events.Load()
	return d, nil
}

// parallel runs f(0..n-1) on workers goroutines, reporting progress now
// and then; the first error stops the rest.
func parallel(ctx context.Context, workers, n int, f func(i int) error, progress func(done int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := retry(ctx, func() error { return f(i) }); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				if d := done.Add(1); d%100 == 0 || int(d) == n {
					progress(int(d))
				}
			}
		})
	}
	wg.Wait()
	return first
}

// retry tries a request up to three times: a long build should not die
// of one timeout or rate limit.
func retry(ctx context.Context, f func() error) error {
	var err error
	for attempt := range 3 {
		if err = f(); err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	return err
}
