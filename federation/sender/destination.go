package sender

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// destination is one server's queue worker. Its goroutine runs while the
// queue has something (Sender.notify starts it, Sender.idle ends it);
// the struct stays, with the back-off state mirrored in fs_destinations.
type destination struct {
	name string
	s    *Sender
	poke chan struct{} // something was queued, or Wake

	running bool // guarded by s.mu

	// Only the running goroutine touches these: the transaction begun and
	// not yet accepted, and whether the database was asked for one left
	// by an earlier process.
	pending        *pendingTxn
	pendingChecked bool

	mu          sync.Mutex
	failures    int       // failed attempts in a row
	retryAt     time.Time // no attempt before
	lastAttempt time.Time
}

// wake brings a backed-off destination's next attempt forward to now,
// unless its last attempt was less than gap ago; it reports whether it
// did.
func (d *destination) wake(now time.Time, gap time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failures == 0 || !now.Before(d.retryAt) || (gap > 0 && now.Sub(d.lastAttempt) < gap) {
		return false
	}
	d.retryAt = now
	return true
}

func (d *destination) state() (failures int, retryAt time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failures, d.retryAt
}

// run sends the queue, transaction after transaction, until it is empty
// or the sender stops.
func (d *destination) run() {
	s := d.s
	defer s.wg.Done()
	ctx := s.ctx
	dbFailures := 0
	for ctx.Err() == nil {
		failures, retryAt := d.state()
		if wait := time.Until(retryAt); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.poke: // new items keep waiting; a Wake moved retryAt
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		txn, err := d.next(ctx, failures > 0)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The database, not the destination, failed: retry soon
			// without counting it against the destination.
			dbFailures++
			s.log.Error("federation queue unreadable", "destination", d.name, "err", err)
			sleep(ctx, min(time.Duration(dbFailures)*time.Second, time.Minute))
			continue
		}
		dbFailures = 0
		if txn == nil {
			if s.idle(d) {
				return
			}
			continue
		}
		d.send(ctx, txn)
	}
}

// next is the transaction to send: the one already begun (a failed one is
// sent again as it was), or a new one of the oldest queued items. While
// the destination is failing, long room backlogs are cut first
// (catch-up). nil when nothing is queued.
func (d *destination) next(ctx context.Context, catchingUp bool) (*pendingTxn, error) {
	s := d.s
	// Before the pending transaction: its success ends the catching up.
	if catchingUp {
		if err := s.catchUp(ctx, d.name); err != nil {
			return nil, err
		}
	}
	if d.pending == nil && !d.pendingChecked {
		txn, err := s.store.pendingTxn(ctx, d.name)
		if err != nil {
			return nil, err
		}
		d.pending, d.pendingChecked = txn, true
	}
	if d.pending == nil {
		txn, err := s.store.beginTxn(ctx, d.name, newTxnID())
		if err != nil {
			return nil, err
		}
		d.pending = txn
	}
	return d.pending, nil
}

// send sends txn once and records the outcome.
func (d *destination) send(ctx context.Context, p *pendingTxn) {
	s := d.s
	now := time.Now()
	d.mu.Lock()
	d.lastAttempt = now
	d.mu.Unlock()
	for i := range p.edus {
		p.edus[i].Origin, p.edus[i].Destination = s.opts.ServerName, d.name
	}
	txn := gomatrixserverlib.Transaction{
		TransactionID:  gomatrixserverlib.TransactionID(p.id),
		Origin:         spec.ServerName(s.opts.ServerName),
		Destination:    spec.ServerName(d.name),
		OriginServerTS: spec.AsTimestamp(now),
		PDUs:           p.pdus,
		EDUs:           p.edus,
	}
	sctx, cancel := context.WithTimeout(ctx, sendTimeout)
	resp, err := s.opts.Transport.SendTransaction(sctx, txn)
	cancel()
	if ctx.Err() != nil {
		return // stopping: the transaction stays pending for the next start
	}
	if err != nil {
		d.failed(ctx, p, err)
		return
	}
	for eventID, r := range resp.PDUs {
		if r.Error != "" {
			// The destination has the event and refused it: sending it
			// again would be refused again.
			s.log.Info("destination refused a PDU", "destination", d.name, "event_id", eventID, "error", r.Error)
		}
	}
	pdus, edus, err := s.store.finishTxn(ctx, d.name, p.id, now.UnixMilli())
	if err != nil {
		// Sent but still recorded as pending: it goes again with the same
		// ID, which the destination recognises.
		s.log.Error("sent transaction not recorded", "destination", d.name, "txn_id", p.id, "err", err)
		return
	}
	d.pending = nil
	s.metrics.sent(d.name, len(p.pdus), len(p.edus))
	s.metrics.addDepth(d.name, -pdus, -edus)
	d.mu.Lock()
	recovered := d.failures > 0
	d.failures, d.retryAt = 0, time.Time{}
	d.mu.Unlock()
	if recovered {
		s.log.Info("destination reachable again", "destination", d.name)
	}
}

// failed backs the destination off after a failed transaction.
func (d *destination) failed(ctx context.Context, p *pendingTxn, sendErr error) {
	s := d.s
	d.mu.Lock()
	d.failures++
	failures := d.failures
	d.retryAt = time.Now().Add(s.opts.Backoff(failures))
	retryAt := d.retryAt
	d.mu.Unlock()
	s.metrics.failed(d.name, failures)
	log := s.log.Debug
	if failures == 1 {
		log = s.log.Warn
	}
	log("transaction failed; destination backed off", "destination", d.name, "txn_id", p.id,
		"failures", failures, "retry_in", time.Until(retryAt).Round(time.Millisecond), "err", sendErr)
	if err := s.store.setBackoff(ctx, d.name, failures, retryAt.UnixMilli()); err != nil {
		s.log.Error("back-off not recorded", "destination", d.name, "err", err)
	}
}

// newTxnID is a transaction ID unique for this server: the time and
// random bits, in the characters the spec allows ([0-9A-Za-z_-]).
func newTxnID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(time.Now().UnixMilli(), 36) + "-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
