package clientapi

import (
	"encoding/json"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/userapi"
)

// maxBackupIDBytes bounds room and session IDs in backup paths and bodies.
const maxBackupIDBytes = 255

// backupVersionBody is the body of POST and PUT /room_keys/version.
type backupVersionBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

func (b *backupVersionBody) check() error {
	if b.Algorithm == "" || len(b.Algorithm) > 255 {
		return mxerr.MissingParam("algorithm is required")
	}
	if len(b.AuthData) == 0 || b.AuthData[0] != '{' {
		return mxerr.MissingParam("auth_data must be an object")
	}
	return nil
}

func (c *ClientAPI) createBackup(req *httputil.Request) (any, error) {
	var body backupVersionBody
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if err := body.check(); err != nil {
		return nil, err
	}
	resp, err := userapi.BackupVersion.Call(req.Context(), c.bus, &userapi.BackupVersionRequest{
		Op: userapi.BackupCreate, UserID: req.Device.UserID, Algorithm: body.Algorithm, AuthData: body.AuthData,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"version": resp.Version}, nil
}

func (c *ClientAPI) getBackup(req *httputil.Request) (any, error) {
	return userapi.BackupVersion.Call(req.Context(), c.bus, &userapi.BackupVersionRequest{
		Op: userapi.BackupGet, UserID: req.Device.UserID, Version: req.PathValue("version"),
	})
}

func (c *ClientAPI) updateBackup(req *httputil.Request) (any, error) {
	var body backupVersionBody
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if err := body.check(); err != nil {
		return nil, err
	}
	version := req.PathValue("version")
	if body.Version != "" && body.Version != version {
		return nil, mxerr.InvalidParam("version in the body does not match the path")
	}
	if _, err := userapi.BackupVersion.Call(req.Context(), c.bus, &userapi.BackupVersionRequest{
		Op: userapi.BackupUpdate, UserID: req.Device.UserID, Version: version, Algorithm: body.Algorithm, AuthData: body.AuthData,
	}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (c *ClientAPI) deleteBackup(req *httputil.Request) (any, error) {
	if _, err := userapi.BackupVersion.Call(req.Context(), c.bus, &userapi.BackupVersionRequest{
		Op: userapi.BackupDelete, UserID: req.Device.UserID, Version: req.PathValue("version"),
	}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// backupScope reads the version query parameter and the path's room and
// session.
func backupScope(req *httputil.Request, op string) (*userapi.BackupKeysRequest, error) {
	version := req.URL.Query().Get("version")
	if version == "" {
		return nil, mxerr.MissingParam("the version query parameter is required")
	}
	r := &userapi.BackupKeysRequest{Op: op, UserID: req.Device.UserID, Version: version,
		RoomID: req.PathValue("roomId"), SessionID: req.PathValue("sessionId")}
	if r.RoomID != "" && !mxid.RoomID(r.RoomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", truncate(r.RoomID, 64))
	}
	if len(r.SessionID) > maxBackupIDBytes {
		return nil, mxerr.InvalidParam("session ID is too long")
	}
	return r, nil
}

// checkKeyData validates one KeyBackupData.
func checkKeyData(k *backupKeyBody) (userapi.BackupKeyData, error) {
	if k.FirstMessageIndex == nil || k.ForwardedCount == nil || k.IsVerified == nil || len(k.SessionData) == 0 {
		return userapi.BackupKeyData{}, mxerr.MissingParam("first_message_index, forwarded_count, is_verified and session_data are required")
	}
	if k.SessionData[0] != '{' {
		return userapi.BackupKeyData{}, mxerr.BadJSON("session_data must be an object")
	}
	if *k.FirstMessageIndex < 0 || *k.ForwardedCount < 0 {
		return userapi.BackupKeyData{}, mxerr.InvalidParam("first_message_index and forwarded_count cannot be negative")
	}
	return userapi.BackupKeyData{FirstMessageIndex: *k.FirstMessageIndex, ForwardedCount: *k.ForwardedCount,
		IsVerified: *k.IsVerified, SessionData: k.SessionData}, nil
}

// backupKeyBody has pointers to tell a missing field from a zero.
type backupKeyBody struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

type roomBackupBody struct {
	Sessions map[string]*backupKeyBody `json:"sessions"`
}

func (c *ClientAPI) putBackupKeys(req *httputil.Request) (any, error) {
	r, err := backupScope(req, "put")
	if err != nil {
		return nil, err
	}
	rooms := map[string]*roomBackupBody{}
	switch {
	case r.SessionID != "":
		var k backupKeyBody
		if err := httputil.DecodeJSON(req.Request, &k); err != nil {
			return nil, err
		}
		rooms[r.RoomID] = &roomBackupBody{Sessions: map[string]*backupKeyBody{r.SessionID: &k}}
	case r.RoomID != "":
		var body roomBackupBody
		if err := httputil.DecodeJSON(req.Request, &body); err != nil {
			return nil, err
		}
		rooms[r.RoomID] = &body
	default:
		var body struct {
			Rooms map[string]*roomBackupBody `json:"rooms"`
		}
		if err := httputil.DecodeJSON(req.Request, &body); err != nil {
			return nil, err
		}
		if body.Rooms == nil {
			return nil, mxerr.MissingParam("rooms is required")
		}
		rooms = body.Rooms
	}
	r.Keys = map[string]map[string]userapi.BackupKeyData{}
	for roomID, room := range rooms {
		if !mxid.RoomID(roomID) {
			return nil, mxerr.InvalidParam("%q is not a room ID", truncate(roomID, 64))
		}
		if room == nil || room.Sessions == nil {
			return nil, mxerr.MissingParam("sessions is required for room %s", roomID)
		}
		r.Keys[roomID] = map[string]userapi.BackupKeyData{}
		for sessionID, k := range room.Sessions {
			if sessionID == "" || len(sessionID) > maxBackupIDBytes || k == nil {
				return nil, mxerr.InvalidParam("bad session %q in room %s", truncate(sessionID, 64), roomID)
			}
			data, err := checkKeyData(k)
			if err != nil {
				return nil, err
			}
			r.Keys[roomID][sessionID] = data
		}
	}
	resp, err := userapi.BackupKeys.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"etag": resp.ETag, "count": resp.Count}, nil
}

func (c *ClientAPI) getBackupKeys(req *httputil.Request) (any, error) {
	r, err := backupScope(req, "get")
	if err != nil {
		return nil, err
	}
	resp, err := userapi.BackupKeys.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	sessions := func(roomID string) map[string]any {
		out := map[string]any{}
		for id, k := range resp.Keys[roomID] {
			out[id] = k
		}
		return map[string]any{"sessions": out}
	}
	switch {
	case r.SessionID != "":
		return resp.Keys[r.RoomID][r.SessionID], nil
	case r.RoomID != "":
		return sessions(r.RoomID), nil
	}
	rooms := map[string]any{}
	for roomID := range resp.Keys {
		rooms[roomID] = sessions(roomID)
	}
	return map[string]any{"rooms": rooms}, nil
}

func (c *ClientAPI) deleteBackupKeys(req *httputil.Request) (any, error) {
	r, err := backupScope(req, "delete")
	if err != nil {
		return nil, err
	}
	resp, err := userapi.BackupKeys.Call(req.Context(), c.bus, r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"etag": resp.ETag, "count": resp.Count}, nil
}
