package sender

import (
	"testing"

	"github.com/chappe-matrix/chappe/internal/sqlutil/sqltest"
)

// BenchmarkQueueAndDeliver queues b.N PDUs one by one (as the room
// consumer does, one database transaction each) for a room with three
// other servers, and waits until all three have them.
func BenchmarkQueueAndDeliver(b *testing.B) {
	for _, backend := range sqltest.Backends() {
		b.Run(backend, func(b *testing.B) {
			e := newEnv(b, backend)
			e.rooms.set(roomA, us, remote, third, "ministere-d.test")
			e.start()
			b.ResetTimer()
			e.queuePDUs(roomA, 0, b.N)
			for _, dest := range []string{remote, third, "ministere-d.test"} {
				eventually(b, "delivery", func() bool { return len(e.tr.pduIDs(dest)) == b.N })
			}
			b.StopTimer()
			e.s.Stop()
		})
	}
}
