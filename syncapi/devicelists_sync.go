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
		delta := newMemberDelta(d.UserID)
		for roomID, r := range resp.Rooms.Join {
			for _, evs := range [][]roomserver.ClientEvent{r.State.Events, r.Timeline.Events} {
				for i := range evs {
					if err := delta.add(ctx, s, roomID, &evs[i]); err != nil {
						return err
					}
				}
			}
		}
		for roomID, r := range resp.Rooms.Leave {
			for _, evs := range [][]roomserver.ClientEvent{r.State.Events, r.Timeline.Events} {
				for i := range evs {
					if err := delta.add(ctx, s, roomID, &evs[i]); err != nil {
						return err
					}
				}
			}
		}
		changed, left, err := s.deviceLists(ctx, d.UserID, sr.since, now, delta)
		if err != nil {
			return err
		}
		resp.DeviceLists = &deviceLists{Changed: changed, Left: left}
	}
	counts, err := userapi.QueryKeyCounts.Call(ctx, s.bus, &userapi.QueryKeyCountsRequest{UserID: d.UserID, DeviceID: d.DeviceID})
	if err != nil {
		// The userapi unreachable: the sync still goes out, without
		// counts (clients then keep their keys as they are).
		s.log.Warn("one-time key counts unavailable", "err", err)
		resp.DeviceUnusedFallbackKeyTypes = []string{}
		return nil
	}
	resp.DeviceOneTimeKeysCount = counts.OneTimeKeyCounts
	resp.DeviceUnusedFallbackKeyTypes = counts.UnusedFallbackKeys
	return nil
}
