package syncapi

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// runParallel runs jobs, at most n at once, and returns the first error
// (the others are then cancelled). A panicking job becomes an error: the
// router's recovery only covers the request's own goroutine.
func runParallel(ctx context.Context, n int, jobs []roomJob) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	sem := make(chan struct{}, n)
	for _, job := range jobs {
		sem <- struct{}{}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			defer func() {
				if r := recover(); r != nil {
					fail(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
				}
			}()
			if err := job(ctx); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
