package sqlutil

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
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
//
// The log only starts again from its beginning if, when the next writer
// begins, it is all copied back and no reader still reads a part of it.
// Under a steady stream of overlapping reads that moment may not come
// (beside two readers querying in a loop, the log of 4,000 one-row
// transactions never started again: 32 MiB), so once the log holds
// restartFrames pages the checkpoint runs in RESTART mode, which waits up
// to checkpointReaderWait for those readers to finish; readers that begin
// meanwhile read the database file and are not waited for.
const (
	checkpointAfterTxs   = 16
	checkpointMinGap     = 10 * time.Millisecond
	checkpointIdle       = 250 * time.Millisecond
	restartFrames        = 1000 // pages (4 KiB): SQLite's own automatic checkpoint mark
	checkpointReaderWait = 5    // ms, the checkpoint connection's busy_timeout
)

// checkpointer runs until stop is closed, then closes done.
type checkpointer struct {
	// db is the checkpointer's own connection, with the short busy
	// timeout (checkpointReaderWait) a RESTART waits for readers; the
	// pool's connections wait 30 s for locks.
	db         *sql.DB
	writer     chan struct{} // DB.writer
	wrote      chan struct{} // a transaction committed (never blocks)
	stop, done chan struct{}
	closeOnce  sync.Once
	lastFrames int // the log's length at the last held pass (run's goroutine only)
}

// startCheckpointer opens dsn (the database, with the checkpointer's busy
// timeout) and starts checkpointing it.
func startCheckpointer(ctx context.Context, dsn string, writer chan struct{}) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite checkpoint connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite checkpoint connection: %w", err)
	}
	c := &checkpointer{db: db, writer: writer, wrote: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
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
	// grow for as long as writes keep coming. A long log is copied in
	// RESTART mode, which also waits a little for the readers of the log.
	logFrames, all, ok := c.pass("PASSIVE")
	if !ok || c.writer == nil || !all && logFrames < restartFrames {
		return // readers hold part of the log: the next round copies it
	}
	if all && logFrames == c.lastFrames {
		return // nothing written since the last held pass (an idle tick)
	}
	c.lastFrames = logFrames
	mode := "PASSIVE"
	if logFrames >= restartFrames {
		mode = "RESTART"
	}
	c.writer <- struct{}{}
	c.pass(mode)
	<-c.writer
}

// pass runs one checkpoint in mode and reports the log's length in pages
// and whether all of it was copied back (and, for RESTART, its readers
// gone); ok is false when the checkpoint failed.
func (c *checkpointer) pass(mode string) (logFrames int, all, ok bool) {
	var busy, copied int
	err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(`+mode+`)`).Scan(&busy, &logFrames, &copied)
	if err != nil {
		slog.Warn("sqlite checkpoint failed", "mode", mode, "err", err)
		return 0, false, false
	}
	return logFrames, busy == 0 && copied == logFrames, true
}

// close stops the checkpointer and closes its connection; a second call
// does nothing.
func (c *checkpointer) close() {
	if c == nil {
		return
	}
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		if err := c.db.Close(); err != nil {
			slog.Warn("close sqlite checkpoint connection", "err", err)
		}
	})
}
