package roomserver

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

// BenchmarkInputEvents measures PDUs per second stored from a remote
// server: a line of messages in one room, 50 per InputEvents request (a
// full /send transaction), through the bus. Run with
//
//	go test ./roomserver -run '^$' -bench InputEvents -benchtime 5000x
func BenchmarkInputEvents(b *testing.B) {
	for _, backend := range sqltest.Backends() {
		b.Run(backend, func(b *testing.B) {
			env := newTestEnv(b, backend)
			r := newRemote(b)
			roomID := env.createRoom(CreateRoomRequest{Sender: user("owner"), Preset: presetPublic})
			d, _ := env.joinRemote(r, roomID, remoteUser("rita"))
			evs := make([]gomatrixserverlib.PDU, b.N)
			for i := range evs {
				evs[i] = r.build(d, remoteUser("rita"), "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": fmt.Sprint("message ", i)})
			}
			b.ResetTimer()
			start := time.Now()
			for from := 0; from < len(evs); from += 50 {
				res := env.input(roomID, InputKindNew, evs[from:min(from+50, len(evs))]...)
				wantStatus(b, res, InputAccepted)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "PDUs/s")
		})
	}
}

// BenchmarkStoreJoinedRoom measures storing the send_join answer of a
// room of 10,000 members (CHAPPE_BENCH_MEMBERS to change it), sent over
// the bus in parts of 1,000 events as the answer is over NATS's message
// limit. Run with
//
//	go test ./roomserver -run '^$' -bench StoreJoinedRoom -benchtime 1x
func BenchmarkStoreJoinedRoom(b *testing.B) {
	members := 10000
	if n, err := strconv.Atoi(os.Getenv("CHAPPE_BENCH_MEMBERS")); err == nil && n > 0 {
		members = n
	}
	for _, backend := range sqltest.Backends() {
		b.Run(backend, func(b *testing.B) {
			env := newTestEnv(b, backend)
			var total time.Duration
			for i := range b.N {
				b.StopTimer()
				d, _, join := remoteRoomWithMembers(b, newRemote(b), "12", members, user(fmt.Sprint("joiner", i)))
				b.StartTimer()
				start := time.Now()
				if err := storeJoinInParts(env, "12", join, d, 1000); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/join")
			b.ReportMetric(float64(members*b.N)/total.Seconds(), "members/s")
		})
	}
}

// BenchmarkForkBigRoom measures a branch meeting the current state in a
// room of 10,000 members (CHAPPE_BENCH_MEMBERS): remote members join on
// a branch that has not seen a local message, so the two states conflict
// (one lacks a member of the other) and state resolution runs on the
// whole state and its auth chains. Cold: the first resolution
// reads the auth chains; warm: the next ones find them cached.
func BenchmarkForkBigRoom(b *testing.B) {
	members := 10000
	if n, err := strconv.Atoi(os.Getenv("CHAPPE_BENCH_MEMBERS")); err == nil && n > 0 {
		members = n
	}
	for _, backend := range sqltest.Backends() {
		b.Run(backend, func(b *testing.B) {
			env := newTestEnv(b, backend)
			r := newRemote(b)
			d, _, join := remoteRoomWithMembers(b, r, "12", members, user("alice"))
			if err := storeJoinInParts(env, "12", join, d, 1000); err != nil {
				b.Fatal(err)
			}
			env.mustSend(user("alice"), d.roomID, "m.room.message", map[string]string{"body": "here"})
			d.state[keyOf(join)] = join
			b.ResetTimer()
			var cold time.Duration
			start := time.Now()
			for i := range b.N {
				u := remoteUser(fmt.Sprint("late", i))
				ev := r.buildOn(d, []gomatrixserverlib.PDU{join}, u, "m.room.member", &u, map[string]string{"membership": "join"})
				t0 := time.Now()
				wantStatus(b, env.input(d.roomID, InputKindNew, ev), InputAccepted)
				if i == 0 {
					cold = time.Since(t0)
				}
			}
			b.ReportMetric(cold.Seconds(), "s/cold")
			b.ReportMetric(time.Since(start).Seconds()/float64(b.N), "s/op")
		})
	}
}
