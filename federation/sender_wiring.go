package federation

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/chappe-matrix/chappe/federation/sender"
)

// senderWiring holds the outbound queues (package sender): what this
// server sends to others, fed by the roomserver's, syncapi's and the
// userapi's streams.
type senderWiring struct {
	s *sender.Sender
}

// startSender resumes the queues left in the database and starts the
// consumers that fill them.
func (f *Federation) startSender(ctx context.Context) error {
	if f.client == nil || f.reader == nil {
		return errors.New("the sender needs the federation client and the roomserver's reader")
	}
	s, err := sender.New(ctx, sender.Options{
		DB:         f.db,
		Bus:        f.bus,
		ServerName: f.serverName,
		Allowed:    f.cfg.FederationAllows,
		Transport:  f.client,
		Rooms:      f.reader,
		Presence:   f.cfg.Presence.Enabled,
		Log:        f.log.With("part", "sender"),
		Metrics:    f.base.Metrics,
	})
	if err != nil {
		return err
	}
	f.sender = &senderWiring{s: s}
	f.onClose(s.Stop)
	return s.StartInputs(ctx)
}

// wakeSender tells the sender that server just made a request to us: a
// queue backed off after failures is retried now.
func (f *Federation) wakeSender(server string) {
	if f.sender != nil {
		f.sender.s.Wake(server)
	}
}

// queueToDevice queues the to-device messages of one /sendToDevice for
// the users of server: what clientapi's RemoteKeys.SendToDevice does.
func (f *Federation) queueToDevice(ctx context.Context, server, senderID, eventType, txnID string, messages map[string]map[string]json.RawMessage) error {
	if f.sender == nil {
		return errSenderStopped
	}
	return f.sender.s.QueueToDevice(ctx, server, senderID, eventType, txnID, messages)
}

// broadcastPDU sends an event that another server's user made through us
// (send_join, send_leave, send_knock, once stored at pos) to every server
// in the room before it but those excluded (the author's, which has it).
func (f *Federation) broadcastPDU(ctx context.Context, roomID, eventID string, pdu json.RawMessage, pos int64, exclude ...string) error {
	if f.sender == nil {
		return errSenderStopped
	}
	return f.sender.s.BroadcastPDU(ctx, roomID, eventID, pdu, pos, exclude...)
}

// deviceListStreamID is the stream_id /user/devices answers for a local
// user.
func (f *Federation) deviceListStreamID(ctx context.Context, userID string) (int64, error) {
	if f.sender == nil {
		return 0, errSenderStopped
	}
	return f.sender.s.DeviceListStreamID(ctx, userID)
}

var errSenderStopped = errors.New("the federation sender is not running")
