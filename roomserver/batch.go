package roomserver

import (
	"context"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// pendingEvent is an event that was built and authorised but is not stored
// yet. commit fills in its nid, position and snapshots.
type pendingEvent struct {
	pdu        gomatrixserverlib.PDU
	key        *stateKey // nil for message events
	membership string    // for m.room.member
	deviceID   string    // the sender's device and transaction, for local sends
	txnID      string
	replaces   eventRef // the state event this one replaces
	redacts    eventRef // the event a redaction redacts

	// The overlay entry this event hid, restored if the batch drops it.
	prevOverlay *pendingEvent

	nid, pos       int64
	snapshotBefore int64
	snapshotAfter  int64
}

// eventRef points at a stored event (nid) or one of the same batch
// (pending), whose nid is only known once it is inserted.
type eventRef struct {
	nid     int64
	pending *pendingEvent
}

func (r eventRef) resolve() int64 {
	if r.pending != nil {
		return r.pending.nid
	}
	return r.nid
}

func (r eventRef) isZero() bool { return r.nid == 0 && r.pending == nil }

// batch is a room's head as seen by the requests of one batch: the stored
// head plus the events built so far, which later requests of the batch
// build upon. Nothing here touches the database until commit.
type batch struct {
	rs          *Roomserver
	ctx         context.Context
	head        *roomHead
	extremities []string
	depth       int64
	overlay     map[stateKey]*pendingEvent
	events      []*pendingEvent
	txns        map[txnKey]string
}

func (rs *Roomserver) newBatch(ctx context.Context, h *roomHead) *batch {
	return &batch{
		rs:          rs,
		ctx:         ctx,
		head:        h,
		extremities: slices.Clone(h.extremities),
		depth:       h.depth,
		overlay:     map[stateKey]*pendingEvent{},
		txns:        map[txnKey]string{},
	}
}

// stateRef finds the current event for k.
func (b *batch) stateRef(k stateKey) eventRef {
	if p, ok := b.overlay[k]; ok {
		return eventRef{pending: p}
	}
	return eventRef{nid: b.head.state[k]}
}

// stateEvent returns the current event for k, nil if there is none.
func (b *batch) stateEvent(k stateKey) (gomatrixserverlib.PDU, error) {
	ref := b.stateRef(k)
	if ref.pending != nil {
		return ref.pending.pdu, nil
	}
	if ref.nid == 0 {
		return nil, nil
	}
	return b.rs.event(b.ctx, b.head.version, ref.nid)
}

// membership returns userID's current membership ("" if none) and event.
func (b *batch) membership(userID string) (string, gomatrixserverlib.PDU, error) {
	ev, err := b.stateEvent(stateKey{spec.MRoomMember, userID})
	if err != nil || ev == nil {
		return "", nil, err
	}
	m, err := ev.Membership()
	if err != nil {
		return "", nil, err
	}
	return m, ev, nil
}

// add appends an event to the batch: later events see it in the state and
// take it as their prev_event.
func (b *batch) add(p *pendingEvent) {
	b.events = append(b.events, p)
	if p.key != nil {
		p.prevOverlay = b.overlay[*p.key]
		b.overlay[*p.key] = p
	}
	b.extremities = []string{p.pdu.EventID()}
	b.depth = p.pdu.Depth()
	if p.txnID != "" {
		b.txns[txnKey{string(p.pdu.SenderID()), p.deviceID, p.txnID}] = p.pdu.EventID()
	}
}

// truncate drops the events added after the first n, when the request
// that added them fails half-way.
func (b *batch) truncate(n int) {
	for i := len(b.events) - 1; i >= n; i-- {
		p := b.events[i]
		if p.key != nil {
			if p.prevOverlay != nil {
				b.overlay[*p.key] = p.prevOverlay
			} else {
				delete(b.overlay, *p.key)
			}
		}
		if p.txnID != "" {
			delete(b.txns, txnKey{string(p.pdu.SenderID()), p.deviceID, p.txnID})
		}
	}
	b.events = b.events[:n]
	if n == 0 {
		b.extremities = slices.Clone(b.head.extremities)
		b.depth = b.head.depth
		return
	}
	last := b.events[n-1].pdu
	b.extremities = []string{last.EventID()}
	b.depth = last.Depth()
}

// userLevel is userID's power level in the current state, creators of
// room version 12 included.
func (b *batch) userLevel(userID string) (int64, gomatrixserverlib.PowerLevelContent, error) {
	create, err := b.stateEvent(stateKey{spec.MRoomCreate, ""})
	if err != nil {
		return 0, gomatrixserverlib.PowerLevelContent{}, err
	}
	plEvent, err := b.stateEvent(stateKey{spec.MRoomPowerLevels, ""})
	if err != nil {
		return 0, gomatrixserverlib.PowerLevelContent{}, err
	}
	return levelIn(b.head.version, create, plEvent, userID)
}

// levelIn is userID's power level given a state's create and power levels
// events (either may be nil), creators of room version 12 included.
func levelIn(version gomatrixserverlib.IRoomVersion, create, plEvent gomatrixserverlib.PDU, userID string) (int64, gomatrixserverlib.PowerLevelContent, error) {
	var pl gomatrixserverlib.PowerLevelContent
	if plEvent != nil {
		var err error
		if pl, err = gomatrixserverlib.NewPowerLevelContentFromEvent(plEvent); err != nil {
			return 0, pl, err
		}
	} else {
		pl.Defaults()
	}
	if create != nil && version.PrivilegedCreators() {
		if slices.Contains(gomatrixserverlib.CreatorsFromCreateEvent(create), userID) {
			return gomatrixserverlib.CreatorPowerLevel, pl, nil
		}
	}
	if plEvent == nil && create != nil && string(create.SenderID()) == userID {
		return 100, pl, nil
	}
	return pl.UserLevel(spec.SenderID(userID)), pl, nil
}
