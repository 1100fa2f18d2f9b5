package roomserver

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// maxBatch bounds how many queued requests of one room are committed in
// one transaction, so one busy room cannot hold the position mutex long.
const maxBatch = 256

// A job is one request against one room. run builds its events into the
// batch (b.add) and returns the response; it runs on the room's worker.
// A job with alone set instead runs outside any batch, between the batches
// before and after it: it gets the room's head (nil for a room not stored
// yet) and commits by itself (events of other servers, input.go).
type job struct {
	ctx   context.Context
	run   func(b *batch) (any, error)
	alone func(h *roomHead) (any, error)
	done  chan jobResult
}

type jobResult struct {
	resp any
	err  error
}

// roomQueue runs one worker goroutine per room that has pending requests:
// a room's requests are applied in order, different rooms in parallel. A
// worker is started on demand and exits when its room's queue is empty.
type roomQueue struct {
	mu      sync.Mutex
	rooms   map[string]*roomWorker
	closed  bool
	running sync.WaitGroup
	process func(roomID string, jobs []*job)
}

type roomWorker struct {
	pending []*job
}

func newRoomQueue(process func(roomID string, jobs []*job)) *roomQueue {
	return &roomQueue{rooms: map[string]*roomWorker{}, process: process}
}

var errShuttingDown = mxerr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "the roomserver is shutting down")

// submit queues run for roomID and waits for its result.
func (q *roomQueue) submit(ctx context.Context, roomID string, run func(b *batch) (any, error)) (any, error) {
	return q.enqueue(roomID, &job{ctx: ctx, run: run, done: make(chan jobResult, 1)})
}

// submitAlone queues a job that runs alone (see job) and waits for it.
func (q *roomQueue) submitAlone(ctx context.Context, roomID string, fn func(h *roomHead) (any, error)) (any, error) {
	return q.enqueue(roomID, &job{ctx: ctx, alone: fn, done: make(chan jobResult, 1)})
}

func (q *roomQueue) enqueue(roomID string, j *job) (any, error) {
	ctx := j.ctx
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, errShuttingDown
	}
	w, ok := q.rooms[roomID]
	if !ok {
		w = &roomWorker{}
		q.rooms[roomID] = w
		q.running.Add(1)
		go q.work(roomID, w)
	}
	w.pending = append(w.pending, j)
	q.mu.Unlock()
	select {
	case r := <-j.done:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (q *roomQueue) work(roomID string, w *roomWorker) {
	defer q.running.Done()
	for {
		q.mu.Lock()
		if len(w.pending) == 0 {
			delete(q.rooms, roomID)
			q.mu.Unlock()
			return
		}
		n := min(len(w.pending), maxBatch)
		jobs := w.pending[:n:n]
		w.pending = w.pending[n:]
		q.mu.Unlock()
		q.process(roomID, jobs)
	}
}

// outside runs fn outside any room's order (a room being created has no
// worker yet), counted as work in progress so that close waits for it.
func (q *roomQueue) outside(fn func() error) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errShuttingDown
	}
	q.running.Add(1)
	q.mu.Unlock()
	defer q.running.Done()
	return fn()
}

// close refuses new requests and waits for the queued ones.
func (q *roomQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.running.Wait()
}

// processBatch runs the jobs of one room in order: a run of ordinary jobs
// is built and committed in one transaction, a job that runs alone in
// between.
func (rs *Roomserver) processBatch(roomID string, jobs []*job) {
	for len(jobs) > 0 {
		n := 0
		for n < len(jobs) && jobs[n].alone == nil {
			n++
		}
		if n == 0 {
			rs.runAlone(roomID, jobs[0])
			n = 1
		} else {
			rs.buildAndCommit(roomID, jobs[:n])
		}
		jobs = jobs[n:]
	}
}

func (rs *Roomserver) runAlone(roomID string, j *job) {
	if j.ctx.Err() != nil {
		j.done <- jobResult{err: j.ctx.Err()}
		return
	}
	h, err := rs.head(context.Background(), roomID)
	if err != nil {
		j.done <- jobResult{err: err}
		return
	}
	resp, err := safeRunAlone(rs, j, h)
	if err != nil {
		// What the job changed of the head may not have been committed.
		rs.heads.remove(roomID)
	}
	j.done <- jobResult{resp: resp, err: err}
}

// buildAndCommit builds ordinary jobs in order and commits all their
// events in one transaction.
func (rs *Roomserver) buildAndCommit(roomID string, jobs []*job) {
	ctx := context.Background()
	h, err := rs.head(ctx, roomID)
	if err == nil && h == nil {
		err = mxerr.NotFound("room %s not found", roomID)
	}
	if err != nil {
		for _, j := range jobs {
			j.done <- jobResult{err: err}
		}
		return
	}
	b := rs.newBatch(ctx, h)
	type built struct {
		j     *job
		resp  any
		added bool
	}
	var ok []built
	for _, j := range jobs {
		if j.ctx.Err() != nil {
			// The caller gave up; a retry with the same transaction ID
			// will be sent then.
			j.done <- jobResult{err: j.ctx.Err()}
			continue
		}
		n := len(b.events)
		resp, err := safeRun(j, b)
		if err != nil {
			b.truncate(n)
			j.done <- jobResult{err: err}
			continue
		}
		ok = append(ok, built{j, resp, len(b.events) > n})
	}
	err = rs.commit(ctx, &commitRequest{head: h, events: b.events, extremities: b.extremities, depth: b.depth})
	if err != nil {
		rs.log.Error("commit failed", "room_id", roomID, "events", len(b.events), "err", err)
	}
	for _, r := range ok {
		if r.added && err != nil {
			r.j.done <- jobResult{err: err}
			continue
		}
		r.j.done <- jobResult{resp: r.resp}
	}
}

// safeRunAlone is safeRun for a job that runs alone.
func safeRunAlone(rs *Roomserver, j *job, h *roomHead) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("internal error while storing events")
			rs.log.Error("panic while storing events", "panic", r)
		}
	}()
	return j.alone(h)
}

// safeRun turns a panic in a request into an error for that request
// alone.
func safeRun(j *job, b *batch) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("internal error while building the event")
			b.rs.log.Error("panic while building an event", "panic", r)
		}
	}()
	return j.run(b)
}
