package mediaapi

import (
	"context"
	"time"
)

// sweepEvery is how often expired pending uploads are deleted: a fraction
// of media.unused_expiry, so that none outlives its expiry by much, within
// [1s, 1h].
func sweepEvery(unusedExpiry time.Duration) time.Duration {
	return min(max(unusedExpiry/4, time.Second), time.Hour)
}

// sweep deletes, until ctx ends, the mxc URIs created with
// /_matrix/media/v1/create and never filled before their expiry. They
// already answer 404 and no longer count against max_pending_uploads once
// expired; the sweep keeps them from piling up in ma_media. Several
// processes may sweep at once: the deletion is idempotent.
func (m *MediaAPI) sweep(ctx context.Context) {
	every := sweepEvery(m.cfg.UnusedExpiry)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := m.db.deleteExpiredPending(ctx, nowMS())
		switch {
		case err != nil && ctx.Err() == nil:
			m.log.Warn("sweeping expired pending uploads", "err", err)
		case n > 0:
			m.log.Info("expired pending uploads deleted", "count", n)
		}
	}
}
