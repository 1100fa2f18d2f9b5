package roomserver

import "context"

// Transaction IDs make sends idempotent per (sender, device, txn_id).
//
// A request is checked twice: by its handler, against recent commits and
// the database, before it is queued; and by the room worker, against its
// batch and recent commits, just before it is built. The second check
// catches a repeat that was queued while the first send was still being
// committed: that commit is finished (by this process, in this room's
// worker) before the repeat is built, so it is in the recent-commits
// cache, which is large enough to hold every commit of that short window.

type txnKey struct{ sender, device, txnID string }

// txnCacheSize bounds the recent-commits cache.
const txnCacheSize = 100_000

// sentTxn is the event a transaction already sent, as the worker sees it.
func (b *batch) sentTxn(sender, device, txnID string) (string, bool) {
	if txnID == "" {
		return "", false
	}
	k := txnKey{sender, device, txnID}
	if id, ok := b.txns[k]; ok {
		return id, true
	}
	return b.rs.txns.get(k)
}

// txnEvent is the event a transaction already sent ("" if none), as the
// request handler sees it.
func (rs *Roomserver) txnEvent(ctx context.Context, sender, device, txnID string) (string, error) {
	if id, ok := rs.txns.get(txnKey{sender, device, txnID}); ok {
		return id, nil
	}
	return rs.reader.txnEvent(ctx, sender, device, txnID)
}
