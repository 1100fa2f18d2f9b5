package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/syncapi"
)

// EDU types.
const (
	eduTyping         = "m.typing"
	eduReceipt        = "m.receipt"
	eduPresence       = "m.presence"
	eduToDevice       = "m.direct_to_device"
	eduDeviceList     = "m.device_list_update"
	eduSigningKeyList = "m.signing_key_update"
)

// processEDU hands one EDU to the component that keeps its data. Every
// user an EDU speaks for must belong to the sending server.
func (f *Federation) processEDU(ctx context.Context, origin string, e edu) error {
	switch e.Type {
	case eduTyping:
		return f.onTypingEDU(ctx, origin, e.Content)
	case eduReceipt:
		return f.onReceiptEDU(ctx, origin, e.Content)
	case eduPresence:
		return f.onPresenceEDU(ctx, origin, e.Content)
	case eduToDevice:
		return f.onToDeviceEDU(ctx, origin, e.Content)
	case eduDeviceList, eduSigningKeyList:
		return f.onDeviceListEDU(ctx, origin, e.Content)
	default:
		return nil // unknown EDUs are ignored, as the spec allows
	}
}

// ownedBy is M_FORBIDDEN unless userID is a user of server.
func ownedBy(userID, server string) error {
	if !mxid.UserID(userID) || mxid.ServerOf(userID) != server {
		return mxerr.Forbidden("%q is not a user of %s", userID, server)
	}
	return nil
}

func (f *Federation) onTypingEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		RoomID string `json:"room_id"`
		UserID string `json:"user_id"`
		Typing bool   `json:"typing"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return mxerr.BadJSON("m.typing: %v", err)
	}
	if err := ownedBy(c.UserID, origin); err != nil {
		return err
	}
	if err := f.checkServerACL(ctx, c.RoomID, origin); err != nil {
		return err
	}
	_, err := syncapi.RemoteTyping.Call(ctx, f.bus, &syncapi.RemoteTypingRequest{RoomID: c.RoomID, UserID: c.UserID, Typing: c.Typing})
	return err
}

// receiptEDU is m.receipt's content: room → receipt type → user → receipt.
type receiptEDU map[string]map[string]map[string]struct {
	EventIDs []string `json:"event_ids"`
	Data     struct {
		ThreadID string `json:"thread_id"`
	} `json:"data"`
}

func (f *Federation) onReceiptEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	var c receiptEDU
	if err := json.Unmarshal(raw, &c); err != nil {
		return mxerr.BadJSON("m.receipt: %v", err)
	}
	var errs []error
	for roomID, types := range c {
		if err := f.checkServerACL(ctx, roomID, origin); err != nil {
			errs = append(errs, err)
			continue
		}
		for userID, r := range types["m.read"] {
			if err := ownedBy(userID, origin); err != nil {
				errs = append(errs, err)
				continue
			}
			if len(r.EventIDs) == 0 {
				continue
			}
			// Several event IDs are allowed; the latest read is the last.
			_, err := syncapi.RemoteReceipt.Call(ctx, f.bus, &syncapi.RemoteReceiptRequest{
				RoomID: roomID, UserID: userID, EventID: r.EventIDs[len(r.EventIDs)-1], ThreadID: r.Data.ThreadID,
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("receipt of %s in %s: %w", userID, roomID, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (f *Federation) onPresenceEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		Push []struct {
			UserID    string  `json:"user_id"`
			Presence  string  `json:"presence"`
			StatusMsg *string `json:"status_msg"`
			// How long ago the user was last active, by the origin's clock.
			LastActiveAgo int64 `json:"last_active_ago"`
		} `json:"push"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return mxerr.BadJSON("m.presence: %v", err)
	}
	var errs []error
	for _, p := range c.Push {
		if err := ownedBy(p.UserID, origin); err != nil {
			errs = append(errs, err)
			continue
		}
		_, err := syncapi.RemotePresence.Call(ctx, f.bus, &syncapi.RemotePresenceRequest{
			UserID: p.UserID, Presence: p.Presence, StatusMsg: p.StatusMsg, LastActiveAgo: p.LastActiveAgo,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("presence of %s: %w", p.UserID, err))
		}
	}
	return errors.Join(errs...)
}

func (f *Federation) onToDeviceEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		Sender    string                                `json:"sender"`
		Type      string                                `json:"type"`
		MessageID string                                `json:"message_id"`
		Messages  map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return mxerr.BadJSON("m.direct_to_device: %v", err)
	}
	if err := ownedBy(c.Sender, origin); err != nil {
		return err
	}
	if c.Type == "" || c.MessageID == "" {
		return mxerr.BadJSON("m.direct_to_device needs type and message_id")
	}
	local := make(map[string]map[string]json.RawMessage, len(c.Messages))
	for userID, devices := range c.Messages {
		if mxid.ServerOf(userID) == f.serverName {
			local[userID] = devices
		}
	}
	if len(local) == 0 {
		return nil
	}
	// The message ID is unique per sender: SendToDevice stores it once
	// however often the transaction is retried.
	_, err := syncapi.SendToDevice.Call(ctx, f.bus, &syncapi.SendToDeviceRequest{
		Sender: c.Sender, SenderDevice: "federation", TxnID: c.MessageID, Type: c.Type, Messages: local,
	})
	return err
}

// onDeviceListEDU handles m.device_list_update and m.signing_key_update:
// no copy of remote keys is kept here (keys are queried from their server
// each time), so the change is only recorded for the local users' syncs.
func (f *Federation) onDeviceListEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return mxerr.BadJSON("device list update: %v", err)
	}
	if err := ownedBy(c.UserID, origin); err != nil {
		return err
	}
	_, err := syncapi.RemoteDeviceListChanged.Call(ctx, f.bus, &syncapi.RemoteDeviceListRequest{UserID: c.UserID})
	return err
}
