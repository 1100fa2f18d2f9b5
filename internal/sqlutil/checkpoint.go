package sqlutil

import (
	"context"
	"database/sql"
	"log/slog"
	"time"
)

// SQLite copies its write-ahead log back into the database file
// ("checkpoint") every 1,000 pages by default, inside whichever commit
// crosses the mark: that commit then writes and fsyncs the database file,
// a pause of milliseconds that every request queued on the single writer
// shares (it was most of a sync's p99 latency). Here the automatic
// checkpoint is off and a goroutine checkpoints in PASSIVE mode, which
// runs beside readers and the writer: it never waits for them, and they
// do not wait for it.
//
// A checkpoint follows every few transactions (the log is copied back
// while it is small, and the next writer starts it again from the
// beginning), and at least every checkpointIdle for writes made outside
// WithTx.
const (
	checkpointAfterTxs = 16
	checkpointMinGap   = 10 * time.Millisecond
	checkpointIdle     = 250 * time.Millisecond
)

// checkpointer runs until stop is closed, then closes done.
type checkpointer struct {
	db         *sql.DB
	writer     chan struct{} // DB.writer
	wrote      chan struct{} // a transaction committed (never blocks)
	stop, done chan struct{}
}

func startCheckpointer(db *sql.DB, writer chan struct{}) *checkpointer {
	c := &checkpointer{db: db, writer: writer, wrote: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed notes a commit; the checkpointer acts once enough have come.
func (c *checkpointer) committed() {
	select {
	case c.wrote <- struct{}{}:
	default: // the checkpointer is busy: this commit's pages go with the next
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	idle := time.NewTicker(checkpointIdle)
	defer idle.Stop()
	commits := 0
	for {
		select {
		case <-c.stop:
			return
		case <-idle.C:
		case <-c.wrote:
			if commits++; commits < checkpointAfterTxs {
				continue
			}
		}
		commits = 0
		c.checkpoint()
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointMinGap):
		}
	}
}

func (c *checkpointer) checkpoint() {
	// The bulk of the log is copied beside the writer. The log file only
	// starts again from its beginning when a transaction begins on a log
	// entirely copied back, so the few pages written meanwhile are copied
	// while the writer slot is held (a short pause), else the file would
	// grow for as long as writes keep coming.
	if c.passive() && c.writer != nil {
		c.writer <- struct{}{}
		c.passive()
		<-c.writer
	}
}

// passive runs one PASSIVE checkpoint and says whether it copied the whole
// log.
func (c *checkpointer) passive() bool {
	var busy, logFrames, copied int
	err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied)
	if err != nil {
		slog.Warn("sqlite checkpoint failed", "err", err)
		return false
	}
	return busy == 0 && copied == logFrames
}

func (c *checkpointer) close() {
	if c == nil {
		return
	}
	close(c.stop)
	<-c.done
}
