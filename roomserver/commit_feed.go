package roomserver

import "sync"

// CommitFeed hands the events a roomserver commits to the components of
// the same process the moment they are committed, in commit order. The
// Output stream still carries every event to every process; a component
// that follows the feed (the syncapi of the single binary) hears of an
// event a JetStream round trip sooner, which is most of what separates a
// message sent from the other user's /sync returning it.
type CommitFeed interface {
	// FollowCommits calls f with each batch of committed events, in
	// order. f runs inside the commit: it must return at once (queue the
	// events), and must not change them.
	FollowCommits(f func(events []OutputEvent))
}

// FollowCommits implements CommitFeed.
func (rs *Roomserver) FollowCommits(f func([]OutputEvent)) { rs.publisher.follow(f) }

// followers are the CommitFeed's listeners.
type followers struct {
	mu  sync.RWMutex
	fns []func([]OutputEvent)
}

func (p *publisher) follow(f func([]OutputEvent)) {
	p.followers.mu.Lock()
	defer p.followers.mu.Unlock()
	p.followers.fns = append(p.followers.fns, f)
}

// feed hands outs to the followers; enqueue calls it in commit order.
func (p *publisher) feed(outs []OutputEvent) {
	p.followers.mu.RLock()
	defer p.followers.mu.RUnlock()
	for _, f := range p.followers.fns {
		f(outs)
	}
}
