package sender

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

func TestTransactionsHoldAtMost50PDUs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.start()
		want := e.queueQuietly(roomA, remote, 0, 120)
		eventually(t, "120 PDUs delivered", func() bool { return len(e.tr.pduIDs(remote)) == 120 })
		txns := e.tr.txns(remote)
		var sizes []int
		ids := map[gomatrixserverlib.TransactionID]bool{}
		for _, txn := range txns {
			sizes = append(sizes, len(txn.PDUs))
			ids[txn.TransactionID] = true
			if txn.Origin != us {
				t.Errorf("origin %q", txn.Origin)
			}
		}
		if !slices.Equal(sizes, []int{50, 50, 20}) {
			t.Errorf("transaction sizes %v, want [50 50 20]", sizes)
		}
		if len(ids) != len(txns) {
			t.Errorf("transaction IDs reused: %d IDs for %d transactions", len(ids), len(txns))
		}
		if got := e.tr.pduIDs(remote); !slices.Equal(got, want) {
			t.Errorf("PDUs out of order: %v", got)
		}
		eventually(t, "queue depth 0", func() bool {
			return value(e.s.metrics.queue.WithLabelValues(remote, "pdu")) == 0
		})
		if n := value(e.s.metrics.transactions.WithLabelValues(remote, "sent")); n != 3 {
			t.Errorf("sent counter %v, want 3", n)
		}
	})
}

func TestTransactionsHoldAtMost100EDUs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.start()
		err := e.db.WithTx(e.ctx, func(tx *sqlutil.Tx) error {
			for i := range 250 {
				content, _ := json.Marshal(map[string]int{"n": i})
				if _, err := e.s.store.queueEDU(e.ctx, tx, queuedEDU{destination: remote, eduType: "org.example.n", content: content}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		e.s.metrics.addDepth(remote, 0, 250)
		e.s.notify(remote)
		eventually(t, "250 EDUs delivered", func() bool { return len(e.tr.edus(remote, "org.example.n")) == 250 })
		var sizes []int
		for _, txn := range e.tr.txns(remote) {
			sizes = append(sizes, len(txn.EDUs))
		}
		if !slices.Equal(sizes, []int{100, 100, 50}) {
			t.Errorf("transaction sizes %v, want [100 100 50]", sizes)
		}
		for i, edu := range e.tr.edus(remote, "org.example.n") {
			if want := fmt.Sprintf(`{"n":%d}`, i); string(edu.Content) != want {
				t.Fatalf("EDU %d is %s, want %s", i, edu.Content, want)
			}
		}
	})
}

func TestBackoffThenSuccessDeliversEverythingInOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.rooms.set(roomA, us, remote)
		e.tr.setDown(true)
		e.start()
		want := e.queuePDUs(roomA, 0, 5)
		eventually(t, "three failed attempts", func() bool { return e.tr.attemptCount() >= 3 })
		want = append(want, e.queuePDUs(roomA, 5, 5)...)
		if err := e.s.QueueEDU(e.ctx, remote, gomatrixserverlib.EDU{Type: "m.typing", Content: []byte(`{"room_id":"` + roomA + `"}`)}); err != nil {
			t.Fatal(err)
		}
		e.tr.setDown(false)
		eventually(t, "everything delivered", func() bool { return len(e.tr.pduIDs(remote)) == 10 && len(e.tr.edus(remote, "m.typing")) == 1 })
		if got := e.tr.pduIDs(remote); !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v", got, want)
		}
		if n := value(e.s.metrics.transactions.WithLabelValues(remote, "failed")); n < 3 {
			t.Errorf("failed counter %v, want >= 3", n)
		}
		// Every attempt before the first success was the same transaction.
		first := e.tr.txns(remote)[0].TransactionID
		e.tr.mu.Lock()
		for _, a := range e.tr.attempts[:3] {
			if a.TransactionID != first {
				t.Errorf("a failed transaction was sent again as %s, not %s", a.TransactionID, first)
			}
		}
		e.tr.mu.Unlock()
	})
}

func TestWakeRetriesABackedOffDestination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.rooms.set(roomA, us, remote)
		e.tr.setDown(true)
		e.start(func(o *Options) { o.Backoff = func(int) time.Duration { return time.Hour } })
		e.queuePDUs(roomA, 0, 2)
		eventually(t, "a failed attempt", func() bool { return e.tr.attemptCount() >= 1 })
		e.tr.setDown(false)
		e.s.Wake(third) // another server: nothing changes for remote
		e.s.Wake(remote)
		eventually(t, "delivery after the wake", func() bool { return len(e.tr.pduIDs(remote)) == 2 })
	})
}

func TestQueuesSurviveARestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.rooms.set(roomA, us, remote)
		e.tr.setDown(true)
		e.start(func(o *Options) { o.Backoff = func(int) time.Duration { return time.Hour } })
		want := e.queuePDUs(roomA, 0, 3)
		eventually(t, "a failed attempt", func() bool { return e.tr.attemptCount() >= 1 })
		want = append(want, e.queuePDUs(roomA, 3, 4)...)
		if err := e.s.QueueEDU(e.ctx, remote, gomatrixserverlib.EDU{Type: "m.presence", Content: []byte(`{"push":[]}`)}); err != nil {
			t.Fatal(err)
		}
		e.s.Stop()
		begun := e.tr.attempts[0].TransactionID

		e.tr.setDown(false)
		e.start() // resumes from the database; Wake: the back-off is an hour
		e.s.Wake(remote)
		eventually(t, "the queue delivered after the restart", func() bool {
			return len(e.tr.pduIDs(remote)) == 7 && len(e.tr.edus(remote, "m.presence")) == 1
		})
		if got := e.tr.pduIDs(remote); !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v", got, want)
		}
		if got := e.tr.txns(remote)[0].TransactionID; got != begun {
			t.Errorf("the transaction begun before the restart went as %s, not %s", got, begun)
		}
	})
}

func TestCatchUpSendsOnlyTheNewestEventsOfALongBacklog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.rooms.set(roomA, us, remote)
		e.rooms.set(roomB, us, remote)
		e.tr.setDown(true)
		e.start(func(o *Options) { o.Backoff = func(int) time.Duration { return time.Hour } })
		first := e.queuePDUs(roomA, 0, 1)
		eventually(t, "a failed attempt", func() bool { return e.tr.attemptCount() >= 1 })
		a := e.queuePDUs(roomA, 1, 79) // 79 waiting: over the limit of 50
		b := e.queuePDUs(roomB, 0, 3)  // under it
		e.rooms.setExtremities(roomA, a[len(a)-1], "$remote-event")
		e.tr.setDown(false)
		e.s.Wake(remote)
		eventually(t, "the catch-up delivered", func() bool { return len(e.tr.pduIDs(remote)) == 5 })
		want := append(append(first, a[len(a)-1]), b...)
		if got := e.tr.pduIDs(remote); !slices.Equal(got, want) {
			t.Errorf("delivered %v, want %v", got, want)
		}
		eventually(t, "queue depth 0", func() bool {
			return value(e.s.metrics.queue.WithLabelValues(remote, "pdu")) == 0
		})
		var left int
		if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM fs_pdu_json`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d PDUs left stored (%v)", left, err)
		}
		// Back to normal: a long queue is sent whole.
		more := e.queueQuietly(roomA, remote, 100, 60)
		eventually(t, "60 more", func() bool { return len(e.tr.pduIDs(remote)) == 65 })
		if got := e.tr.pduIDs(remote)[5:]; !slices.Equal(got, more) {
			t.Errorf("after recovery delivered %v", got)
		}
	})
}

func TestNothingGoesOutsideTheAllowList(t *testing.T) {
	const outsider = "externe.test"
	forEachBackend(t, func(t *testing.T, e *env) {
		e.opts.Allowed = func(s string) bool { return s == us || s == remote }
		e.rooms.set(roomA, us, remote, outsider)
		e.start()
		e.queuePDUs(roomA, 0, 2)
		for _, dest := range []string{outsider, us} {
			err := e.s.QueueEDU(e.ctx, dest, gomatrixserverlib.EDU{Type: "m.typing", Content: []byte(`{}`)})
			if me, ok := mxerr.As(err); !ok || me.Code != "M_FORBIDDEN" {
				t.Errorf("EDU for %s: %v, want M_FORBIDDEN", dest, err)
			}
		}
		if err := e.s.QueueToDevice(e.ctx, outsider, "@alice:"+us, "m.room_key_request", "t1",
			map[string]map[string]json.RawMessage{"@bob:" + outsider: {"*": json.RawMessage(`{}`)}}); err == nil {
			t.Error("to-device messages for a server outside the allow-list were queued")
		}
		eventually(t, "delivery to the allowed server", func() bool { return len(e.tr.pduIDs(remote)) == 2 })

		// Queued by an earlier configuration: dropped at start.
		err := e.db.WithTx(e.ctx, func(tx *sqlutil.Tx) error {
			_, err := e.s.store.queuePDU(e.ctx, tx, roomA, "$old", pdu(roomA, "$old"), []string{outsider})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		e.start()
		var n int
		if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM fs_queue_pdus WHERE destination = $1`, outsider).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d PDUs still queued for %s (%v)", n, outsider, err)
		}
		if got := e.tr.destinationsContacted(); !slices.Equal(got, []string{remote}) {
			t.Errorf("contacted %v, want only %s", got, remote)
		}
	})
}

func TestALostReplyIsRetriedWithTheSameTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.rooms.set(roomA, us, remote)
		e.tr.lostReplies = 1
		e.start(func(o *Options) { o.Backoff = func(int) time.Duration { return time.Hour } })
		first := e.queuePDUs(roomA, 0, 1)
		eventually(t, "a lost reply", func() bool { return e.tr.attemptCount() == 1 })
		more := e.queuePDUs(roomA, 1, 2)
		if err := e.s.QueueEDU(e.ctx, remote, gomatrixserverlib.EDU{Type: "m.typing", Content: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		e.s.Wake(remote)
		eventually(t, "everything delivered", func() bool { return len(e.tr.pduIDs(remote)) == 3 })
		e.tr.mu.Lock()
		attempts := slices.Clone(e.tr.attempts)
		e.tr.mu.Unlock()
		a, b := attempts[0], attempts[1]
		if a.TransactionID != b.TransactionID || len(b.PDUs) != 1 || string(a.PDUs[0]) != string(b.PDUs[0]) || len(b.EDUs) != 0 {
			t.Errorf("retry differs: %s %d PDUs %d EDUs, first %s", b.TransactionID, len(b.PDUs), len(b.EDUs), a.TransactionID)
		}
		c := attempts[2]
		if c.TransactionID == a.TransactionID {
			t.Error("new items went under the ID of a transaction already sent")
		}
		if got := e.tr.pduIDs(remote); !slices.Equal(got, append(first, more...)) {
			t.Errorf("delivered %v", got)
		}
	})
}

func TestDefaultBackoff(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 100; n++ {
		d := DefaultBackoff(n)
		nominal := min(backoffMin<<min(n-1, 20), backoffMax)
		if d < nominal*3/4 || d > nominal*5/4 {
			t.Fatalf("failure %d: %s outside %s ± 25%%", n, d, nominal)
		}
		if n <= 3 && d <= prev/2 {
			t.Fatalf("failure %d: %s does not grow from %s", n, d, prev)
		}
		prev = d
	}
}
