package syncapi

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/chappe-matrix/chappe/roomserver"
)

// The E2EE side of sliding sync, as Synapse serves it with simplified
// sliding sync and Element X uses it: the to_device extension (MSC3885),
// the e2ee extension (MSC3884), and the rooms' unread counts. They reuse
// /sync's storage (todevice.go, devicelists*.go, push_store.go).

// slidingToDevice is the to_device extension's answer.
type slidingToDevice struct {
	NextBatch string            `json:"next_batch"`
	Events    []json.RawMessage `json:"events"`
}

// slidingE2EE is the e2ee extension's answer. device_lists is sent on
// every response of a connection but its first, as /sync sends it on
// incremental syncs only.
type slidingE2EE struct {
	DeviceLists                  *deviceLists   `json:"device_lists,omitempty"`
	DeviceOneTimeKeysCount       map[string]int `json:"device_one_time_keys_count"`
	DeviceUnusedFallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`
}

// toDeviceExtension delivers the device's to-device messages after the
// request's since, at most its limit; since acknowledges (and deletes)
// the messages up to it, so a request repeated with the same since gets
// the same messages again. next_batch is where the delivery ends: the
// client sends it back as since once it has the response. The pos plays
// no part, as in Synapse: the client keeps since with its crypto store.
func (sb *slidingBuilder) toDeviceExtension(ctx context.Context) error {
	td := sb.req.Extensions.ToDevice
	s, d := sb.api, sb.device
	out := &slidingToDevice{Events: []json.RawMessage{}}
	sb.resp.Extensions.ToDevice = out
	if td.since > sb.now.Stream {
		// A since from the future (a database restored from a backup):
		// nothing is deleted, and the client keeps its token.
		out.NextBatch = td.Since
		return nil
	}
	if td.since > 0 {
		if err := s.ackToDevice(ctx, d.UserID, d.DeviceID, td.since); err != nil {
			return err
		}
	}
	end, err := s.toDeviceEnd(ctx, d.UserID, d.DeviceID, td.since, sb.now.Stream, td.limit)
	if err != nil {
		return err
	}
	if out.Events, err = s.toDeviceEvents(ctx, d.UserID, d.DeviceID, td.since, end); err != nil {
		return err
	}
	out.NextBatch = strconv.FormatInt(end, 10)
	return nil
}

// e2eeExtension tells the device lists that changed since the connection
// last told them, and the device's key counts. Device lists are computed
// as for /sync (deviceLists), the membership changes read only from the
// rooms with events in the range (the facts cache knows which) and from
// those where the user's own membership changed.
func (sb *slidingBuilder) e2eeExtension(ctx context.Context, byID map[string]*slidingEntry) error {
	s := sb.api
	out := &slidingE2EE{}
	if !sb.initial {
		from := sb.since
		if m := sb.prev.DeviceLists; m != nil {
			from = streamPos{Room: m.Room, Stream: m.Stream}
		}
		delta := newMemberDelta(sb.userID)
		if sb.now.Room > from.Room {
			rooms := map[string]bool{}
			for id, e := range byID {
				if e.membership != roomserver.MembershipJoin {
					continue
				}
				active, err := sb.ss.facts.activeSince(ctx, id, from.Room, sb.now.Room)
				if err != nil {
					return err
				}
				if active {
					rooms[id] = true
				}
			}
			var err error
			if delta, err = s.memberDeltaOf(ctx, sb.userID, rooms, from.Room, sb.now.Room); err != nil {
				return err
			}
		}
		changed, left, err := s.deviceLists(ctx, sb.userID, from, sb.now, delta)
		if err != nil {
			return err
		}
		out.DeviceLists = &deviceLists{Changed: changed, Left: left}
	}
	sb.next.DeviceLists = nil // told up to the new pos
	out.DeviceOneTimeKeysCount, out.DeviceUnusedFallbackKeyTypes = s.keyCounts(ctx, sb.device)
	if out.DeviceOneTimeKeysCount == nil {
		out.DeviceOneTimeKeysCount = map[string]int{}
	}
	sb.resp.Extensions.E2EE = out
	return nil
}

// holdDeviceLists keeps, for a response without the e2ee extension, the
// position device lists were told up to, so that the next response with
// it tells what changed meanwhile.
func (sb *slidingBuilder) holdDeviceLists() {
	switch {
	case sb.prev.DeviceLists != nil:
		m := *sb.prev.DeviceLists
		sb.next.DeviceLists = &m
	case sb.initial:
		sb.next.DeviceLists = &slidingMark{Room: sb.now.Room, Stream: sb.now.Stream}
	default:
		sb.next.DeviceLists = &slidingMark{Room: sb.since.Room, Stream: sb.since.Stream}
	}
}

// loadUnread reads the unread counts of the user's rooms, once per
// response, after the push consumer has counted the events up to now (or
// a second has passed: the counts then follow in a later response, as
// the connection records the counts it sent of each room). Threads are
// counted with their room, as /sync does without
// unread_thread_notifications: MSC4186 has no per-thread counts, and
// Synapse's sliding sync sends none (its room counts are always 0;
// Element X counts from receipts itself).
func (sb *slidingBuilder) loadUnread(ctx context.Context, configs map[string]*slidingRoomConfig) error {
	s := sb.api
	sb.unread = map[string]unreadNotifications{}
	if s.push == nil || len(configs) == 0 {
		return nil
	}
	s.waitPushed(ctx, sb.now.Room)
	counts, err := s.store.unreadCounts(ctx, sb.userID)
	if err != nil {
		return err
	}
	for _, c := range counts {
		if configs[c.RoomID] == nil {
			continue
		}
		u := sb.unread[c.RoomID]
		u.NotificationCount += c.Notify
		u.HighlightCount += c.Highlight
		sb.unread[c.RoomID] = u
	}
	return nil
}
