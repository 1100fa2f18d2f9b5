package roomserver

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

// BenchmarkSendOneRoom measures messages per second into one room through
// the real bus, with 1 and 10 concurrent senders (each send a separate
// request with its own transaction ID, as clients send). Run with
//
//	go test ./roomserver -run '^$' -bench SendOneRoom -benchtime 3000x
//
// and CHAPPE_TEST_POSTGRES set to include PostgreSQL.
func BenchmarkSendOneRoom(b *testing.B) {
	for _, backend := range sqltest.Backends() {
		for _, senders := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/senders=%d", backend, senders), func(b *testing.B) {
				benchSendOneRoom(b, backend, senders)
			})
		}
	}
}

func benchSendOneRoom(b *testing.B, backend string, senders int) {
	env := newTestEnv(b, backend)
	owner := user("owner")
	roomID := env.createRoom(CreateRoomRequest{Sender: owner, Preset: presetPublic})
	users := make([]string, senders)
	for i := range users {
		users[i] = user(fmt.Sprintf("sender%d", i))
		env.mustMember(users[i], roomID, users[i], MembershipJoin)
	}
	content := json.RawMessage(`{"msgtype":"m.text","body":"hello, benchmark"}`)
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				_, err := SendEvent.Call(env.ctx, env.bus, &SendEventRequest{
					Sender: users[s], DeviceID: "BENCH", TxnID: fmt.Sprint(i), RoomID: roomID,
					Type: "m.room.message", Content: content,
				})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d sends failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
