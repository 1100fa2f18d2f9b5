package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-org/gomatrix"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// The fedapi endpoints other components call when something needs another
// server, by family:
//
//   - perform_join.go: remote joins (make_join, send_join, StoreJoinedRoom)
//   - perform_membership.go: remote leaves and knocks
//   - perform_invite.go: invites of remote users (invite v2)
//   - perform_backfill.go: history from other servers
//   - perform_timestamp.go: timestamp_to_event beyond the local history
//   - perform_query.go: remote keys, profiles, aliases, room directories
func (f *Federation) startEndpoints(context.Context) error {
	return errors.Join(
		fedapi.PerformJoin.Serve(f.bus, f.performJoin),
		fedapi.PerformLeave.Serve(f.bus, f.performLeave),
		fedapi.PerformKnock.Serve(f.bus, f.performKnock),
		fedapi.PerformInvite.Serve(f.bus, f.performInvite),
		fedapi.Backfill.Serve(f.bus, f.backfill),
		fedapi.TimestampToEvent.Serve(f.bus, f.timestampToEvent),
		fedapi.QueryKeys.Serve(f.bus, f.queryKeys),
		fedapi.ClaimKeys.Serve(f.bus, f.claimKeys),
		fedapi.QueryProfile.Serve(f.bus, f.queryProfile),
		fedapi.QueryDirectory.Serve(f.bus, f.queryDirectory),
		fedapi.QueryPublicRooms.Serve(f.bus, f.queryPublicRooms),
		fedapi.SendToDevice.Serve(f.bus, f.sendToDevice),
	)
}

func (f *Federation) sendToDevice(ctx context.Context, req *fedapi.SendToDeviceRequest) (*fedapi.SendToDeviceResponse, error) {
	if err := f.allowed(req.Server); err != nil {
		return nil, err
	}
	if err := f.queueToDevice(ctx, req.Server, req.Sender, req.Type, req.TxnID, req.Messages); err != nil {
		return nil, err
	}
	return &fedapi.SendToDeviceResponse{}, nil
}

// allowed is M_FORBIDDEN for a server outside allowed_servers (nothing is
// ever sent to it) and for this server itself.
func (f *Federation) allowed(server string) error {
	if server == "" || server == f.serverName {
		return mxerr.InvalidParam("%q is not another server", server)
	}
	if !f.cfg.FederationAllows(server) {
		return mxerr.Forbidden("federation with %s is not allowed", server)
	}
	return nil
}

// remoteErr turns the failure of a request to server into a Matrix error
// for the caller: the remote's own error when it answered one, else
// M_UNKNOWN with 502 (the server could not be reached or answered
// nonsense).
func remoteErr(server string, err error) error {
	if err == nil {
		return nil
	}
	if me, ok := mxerr.As(err); ok {
		if me.Status == http.StatusUnauthorized {
			// Our signature refused: not the client's token.
			return mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "%s refused our request: %s", server, me.Message)
		}
		return me
	}
	var he gomatrix.HTTPError
	if errors.As(err, &he) {
		var body struct {
			Code    string `json:"errcode"`
			Message string `json:"error"`
		}
		if json.Unmarshal(he.Contents, &body) == nil && body.Code != "" {
			return &mxerr.Error{Status: he.Code, Code: body.Code, Message: body.Message}
		}
		return mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "%s answered %d", server, he.Code)
	}
	return mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "%s could not be reached: %v", server, err)
}

// failureJSON is a "failures" entry.
func failureJSON(err error) json.RawMessage {
	me, ok := mxerr.As(err)
	if !ok {
		me = mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "%v", err)
	}
	data, _ := json.Marshal(map[string]string{"errcode": me.Code, "error": me.Message})
	return data
}
