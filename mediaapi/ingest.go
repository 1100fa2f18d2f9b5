package mediaapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// spooled is content written to a temporary file, hashed on the way.
type spooled struct {
	path   string
	sha256 string
	size   int64
}

// spool streams r into a temporary file in the store's temp directory,
// hashing and counting as it goes; nothing is held in memory beyond
// io.Copy's buffer. More than limit bytes is M_TOO_LARGE. The caller
// either hands the file to put or removes it with discard.
func (m *MediaAPI) spool(r io.Reader, limit int64) (*spooled, error) {
	sp, err := m.spoolWith(func(w io.Writer) (int64, error) {
		// One byte over the limit is enough to know it is too large.
		return io.Copy(w, io.LimitReader(r, limit+1))
	})
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, mxerr.TooLarge("upload is over %d bytes", tooLarge.Limit)
		}
		// The client hung up or sent a broken body: nothing to store.
		return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "could not read the upload: %v", err)
	}
	if sp.size > limit {
		sp.discard()
		return nil, mxerr.TooLarge("upload is over %d bytes", limit)
	}
	return sp, nil
}

// spoolWith runs write against a new temporary file (tee'd into the
// hash) and returns the spooled result; write returns the bytes written.
func (m *MediaAPI) spoolWith(write func(io.Writer) (int64, error)) (*spooled, error) {
	f, err := os.CreateTemp(m.store.TempDir(), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sp := &spooled{path: f.Name()}
	h := sha256.New()
	n, err := write(io.MultiWriter(f, h))
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		sp.discard()
		return nil, err
	}
	sp.size = n
	sp.sha256 = hex.EncodeToString(h.Sum(nil))
	return sp, nil
}

func (sp *spooled) discard() { _ = os.Remove(sp.path) }

// put moves the spooled file into the store under its hash, unless the
// same content is already there (deduplication), and then runs record —
// the database write that references the content — under the content's
// lock, so that a concurrent deletion of the last other reference cannot
// remove the file in between.
func (m *MediaAPI) put(ctx context.Context, sp *spooled, record func() error) error {
	defer sp.discard() // gone already when PutFile renamed it
	unlock := m.lockKey(sp.sha256)
	defer unlock()
	blob, err := m.store.Open(ctx, sp.sha256)
	switch {
	case err == nil:
		_ = blob.Close() // already stored: the temporary file is dropped
	case errors.Is(err, ErrNotFound):
		if err := m.store.PutFile(ctx, sp.sha256, sp.path); err != nil {
			return err
		}
	default:
		return err
	}
	if err := record(); err != nil {
		m.deleteIfUnreferencedLocked(ctx, sp.sha256)
		return err
	}
	return nil
}
