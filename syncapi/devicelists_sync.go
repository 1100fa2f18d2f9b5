package syncapi

import (
	"context"

	"github.com/chappe-matrix/chappe/roomserver"
	"github.com/chappe-matrix/chappe/userapi"
)

// e2eeSync is the E2EE part of a /sync response, embedded in
// syncResponse.
type e2eeSync struct {
	ToDevice               *eventList     `json:"to_device,omitempty"`
	DeviceLists            *deviceLists   `json:"device_lists,omitempty"`
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count,omitempty"`
	// Sent even when empty: clients read its presence as the server
	// supporting fallback keys.
	DeviceUnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

type deviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// e2eeEmpty says whether the E2EE part has news that should end a wait
// (key counts alone do not).
func (e *e2eeSync) e2eeEmpty() bool {
	return (e.ToDevice == nil || len(e.ToDevice.Events) == 0) &&
		(e.DeviceLists == nil || len(e.DeviceLists.Changed)+len(e.DeviceLists.Left) == 0)
}

// addE2EE fills the E2EE part of a built response: to-device messages,
// device lists (incremental syncs only, as the spec says), key counts.
func (s *SyncAPI) addE2EE(ctx context.Context, sr *syncRequest, now streamPos, resp *syncResponse) error {
	d := sr.device
	from := int64(0)
	if !sr.initial {
		from = sr.since.Stream
	}
	evs, err := s.toDeviceEvents(ctx, d.UserID, d.DeviceID, from, now.Stream)
	if err != nil {
		return err
	}
	resp.ToDevice = &eventList{Events: evs}
	if !sr.initial && now.after(sr.since) {
		// Member events sent only as lazy-loaded members of the timeline's
		// senders are no membership change: read as joins, they made every
		// sync of a lazy-loading client report its senders (and, for the
		// user's own member event, every member of the room) as changed.
		delta := newMemberDelta(d.UserID)
		add := func(roomID string, state stateBatch, tl []roomserver.ClientEvent) error {
			for i := range state.Events {
				if state.lazyOnly[state.Events[i].EventID] {
					continue
				}
				if err := delta.add(ctx, s, roomID, &state.Events[i]); err != nil {
					return err
				}
			}
			for i := range tl {
				if err := delta.add(ctx, s, roomID, &tl[i]); err != nil {
					return err
				}
			}
			return nil
		}
		for roomID, r := range resp.Rooms.Join {
			if err := add(roomID, r.State, r.Timeline.Events); err != nil {
				return err
			}
		}
		for roomID, r := range resp.Rooms.Leave {
			if err := add(roomID, r.State, r.Timeline.Events); err != nil {
				return err
			}
		}
		changed, left, err := s.deviceLists(ctx, d.UserID, sr.since, now, delta)
		if err != nil {
			return err
		}
		resp.DeviceLists = &deviceLists{Changed: changed, Left: left}
	}
	return nil
}

// keyCountsBeside starts reading the device's key counts (a call to the
// userapi) while the caller builds the rest of the response; the returned
// function waits for them.
func (s *SyncAPI) keyCountsBeside(ctx context.Context, d *userapi.Device) func() (map[string]int, []string) {
	type counts struct {
		otk      map[string]int
		fallback []string
	}
	ch := make(chan counts, 1)
	go func() {
		otk, fallback := s.keyCounts(ctx, d)
		ch <- counts{otk, fallback}
	}()
	return func() (map[string]int, []string) {
		c := <-ch
		return c.otk, c.fallback
	}
}

// keyCounts reads the device's one-time key counts and unused fallback
// key types. With the userapi unreachable, the sync still goes out,
// without counts (clients then keep their keys as they are).
func (s *SyncAPI) keyCounts(ctx context.Context, d *userapi.Device) (map[string]int, []string) {
	counts, err := userapi.QueryKeyCounts.Call(ctx, s.bus, &userapi.QueryKeyCountsRequest{UserID: d.UserID, DeviceID: d.DeviceID})
	if err != nil {
		s.log.Warn("one-time key counts unavailable", "err", err)
		return nil, []string{}
	}
	fallback := counts.UnusedFallbackKeys
	if fallback == nil {
		fallback = []string{}
	}
	return counts.OneTimeKeyCounts, fallback
}
