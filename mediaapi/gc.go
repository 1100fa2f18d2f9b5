package mediaapi

import (
	"context"
	"hash/fnv"
)

// lockKey takes the in-process lock of a content key. Several processes
// running the mediaapi on one store are not covered: a deletion there can
// race an identical upload elsewhere. Deletions are admin actions, so the
// window is small; a store-level reference count would close it.
func (m *MediaAPI) lockKey(key string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	mu := &m.keyLocks[h.Sum32()%uint32(len(m.keyLocks))]
	mu.Lock()
	return mu.Unlock
}

// deleteIfUnreferenced removes stored content no row points at any more.
func (m *MediaAPI) deleteIfUnreferenced(ctx context.Context, key string) {
	unlock := m.lockKey(key)
	defer unlock()
	m.deleteIfUnreferencedLocked(ctx, key)
}

func (m *MediaAPI) deleteIfUnreferencedLocked(ctx context.Context, key string) {
	if key == "" {
		return
	}
	used, err := m.db.contentReferenced(ctx, key)
	if err != nil || used {
		if err != nil {
			m.log.Warn("keeping stored content: reference check failed", "key", key, "err", err)
		}
		return
	}
	if err := m.store.Delete(ctx, key); err != nil {
		m.log.Warn("delete stored content", "key", key, "err", err)
	}
}

// removeMedia deletes a media row, then its content and the content's
// thumbnails when no other media shares them. The final deletions
// re-check references under the content's lock.
func (m *MediaAPI) removeMedia(ctx context.Context, md *Media) error {
	if err := m.db.deleteMedia(ctx, md.Origin, md.MediaID); err != nil {
		return err
	}
	if md.SHA256 == "" {
		return nil
	}
	if used, err := m.db.sourceUsed(ctx, md.SHA256); err != nil || used {
		return err
	}
	thumbs, err := m.db.thumbnailKeys(ctx, md.SHA256)
	if err != nil {
		return err
	}
	if err := m.db.deleteThumbnails(ctx, md.SHA256); err != nil {
		return err
	}
	for _, k := range thumbs {
		m.deleteIfUnreferenced(ctx, k)
	}
	m.deleteIfUnreferenced(ctx, md.SHA256)
	return nil
}
