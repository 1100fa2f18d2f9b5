package clientapi

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/syncapi"
	"github.com/chappe-matrix/chappe/userapi"
)

// defaultKeysTimeout is how long remote servers get in /keys/query and
// /keys/claim when the client does not say (the spec's 10 seconds).
const defaultKeysTimeout = 10 * time.Second

func (c *ClientAPI) uploadKeys(req *httputil.Request) (any, error) {
	var body struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if len(body.DeviceKeys) > 0 && string(body.DeviceKeys) != "null" && body.DeviceKeys[0] != '{' {
		return nil, mxerr.BadJSON("device_keys must be an object")
	}
	return userapi.UploadKeys.Call(req.Context(), c.bus, &userapi.UploadKeysRequest{
		UserID: req.Device.UserID, DeviceID: req.Device.DeviceID,
		DeviceKeys: body.DeviceKeys, OneTimeKeys: body.OneTimeKeys, FallbackKeys: body.FallbackKeys,
	})
}

// keysTimeout reads the request's timeout in milliseconds.
func keysTimeout(ms *int64) time.Duration {
	if ms == nil || *ms < 0 {
		return defaultKeysTimeout
	}
	return min(time.Duration(*ms)*time.Millisecond, time.Minute)
}

// failure is an entry of a "failures" map.
func failure(err error) map[string]any {
	if me, ok := mxerr.As(err); ok {
		return map[string]any{"errcode": me.Code, "error": me.Message}
	}
	return map[string]any{"errcode": "M_UNAVAILABLE", "error": err.Error()}
}

func (c *ClientAPI) queryKeys(req *httputil.Request) (any, error) {
	var body struct {
		DeviceKeys map[string][]string `json:"device_keys"`
		Timeout    *int64              `json:"timeout"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.DeviceKeys == nil {
		return nil, mxerr.MissingParam("device_keys is required")
	}
	local, remotes := map[string][]string{}, map[string]map[string][]string{}
	for user, devices := range body.DeviceKeys {
		if !mxid.UserID(user) {
			return nil, mxerr.InvalidParam("device_keys: %q is not a user ID", truncate(user, 64))
		}
		if server := mxid.ServerOf(user); server != c.cfg.ServerName {
			if remotes[server] == nil {
				remotes[server] = map[string][]string{}
			}
			remotes[server][user] = devices
			continue
		}
		local[user] = devices
	}
	resp, err := userapi.QueryKeys.Call(req.Context(), c.bus, &userapi.QueryKeysRequest{Requester: req.Device.UserID, DeviceKeys: local})
	if err != nil {
		return nil, err
	}
	failures := map[string]any{}
	ctx, cancel := context.WithTimeout(req.Context(), keysTimeout(body.Timeout))
	defer cancel()
	var mu sync.Mutex
	perServer(remotes, func(server string, users map[string][]string) {
		r, err := c.remote().QueryKeys(ctx, server, users)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures[server] = failure(err)
			return
		}
		maps.Copy(resp.DeviceKeys, r.DeviceKeys)
		maps.Copy(resp.MasterKeys, r.MasterKeys)
		maps.Copy(resp.SelfSigningKeys, r.SelfSigningKeys)
	})
	return map[string]any{
		"device_keys":       resp.DeviceKeys,
		"master_keys":       resp.MasterKeys,
		"self_signing_keys": resp.SelfSigningKeys,
		"user_signing_keys": resp.UserSigningKeys,
		"failures":          failures,
	}, nil
}

func (c *ClientAPI) claimKeys(req *httputil.Request) (any, error) {
	var body struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
		Timeout     *int64                       `json:"timeout"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.OneTimeKeys == nil {
		return nil, mxerr.MissingParam("one_time_keys is required")
	}
	local, remotes := map[string]map[string]string{}, map[string]map[string]map[string]string{}
	for user, devices := range body.OneTimeKeys {
		if !mxid.UserID(user) {
			return nil, mxerr.InvalidParam("one_time_keys: %q is not a user ID", truncate(user, 64))
		}
		if server := mxid.ServerOf(user); server != c.cfg.ServerName {
			if remotes[server] == nil {
				remotes[server] = map[string]map[string]string{}
			}
			remotes[server][user] = devices
			continue
		}
		local[user] = devices
	}
	resp, err := userapi.ClaimKeys.Call(req.Context(), c.bus, &userapi.ClaimKeysRequest{OneTimeKeys: local})
	if err != nil {
		return nil, err
	}
	failures := map[string]any{}
	ctx, cancel := context.WithTimeout(req.Context(), keysTimeout(body.Timeout))
	defer cancel()
	var mu sync.Mutex
	perServer(remotes, func(server string, keys map[string]map[string]string) {
		r, err := c.remote().ClaimKeys(ctx, server, keys)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures[server] = failure(err)
			return
		}
		maps.Copy(resp.OneTimeKeys, r.OneTimeKeys)
	})
	return map[string]any{"one_time_keys": resp.OneTimeKeys, "failures": failures}, nil
}

// keyChanges is /keys/changes: its tokens are /sync tokens, so syncapi
// answers.
func (c *ClientAPI) keyChanges(req *httputil.Request) (any, error) {
	q := req.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" || to == "" {
		return nil, mxerr.MissingParam("from and to are required")
	}
	return syncapi.QueryKeyChanges.Call(req.Context(), c.bus, &syncapi.KeyChangesRequest{UserID: req.Device.UserID, From: from, To: to})
}

func (c *ClientAPI) sendToDevice(req *httputil.Request) (any, error) {
	eventType, txnID := req.PathValue("eventType"), req.PathValue("txnId")
	if eventType == "" || len(eventType) > 255 {
		return nil, mxerr.InvalidParam("eventType must be 1 to 255 bytes")
	}
	if txnID == "" || len(txnID) > maxTxnIDLength {
		return nil, mxerr.InvalidParam("txnId must be 1 to %d bytes", maxTxnIDLength)
	}
	var body struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.Messages == nil {
		return nil, mxerr.MissingParam("messages is required")
	}
	local, remotes := map[string]map[string]json.RawMessage{}, map[string]map[string]map[string]json.RawMessage{}
	for user, devices := range body.Messages {
		if !mxid.UserID(user) {
			return nil, mxerr.InvalidParam("messages: %q is not a user ID", truncate(user, 64))
		}
		for device, content := range devices {
			if device == "" || len(device) > 255 {
				return nil, mxerr.InvalidParam("messages: bad device ID for %s", user)
			}
			if len(content) == 0 || content[0] != '{' {
				return nil, mxerr.BadJSON("messages: the content for %s/%s is not an object", user, truncate(device, 64))
			}
		}
		if server := mxid.ServerOf(user); server != c.cfg.ServerName {
			if remotes[server] == nil {
				remotes[server] = map[string]map[string]json.RawMessage{}
			}
			remotes[server][user] = devices
			continue
		}
		local[user] = devices
	}
	if _, err := syncapi.SendToDevice.Call(req.Context(), c.bus, &syncapi.SendToDeviceRequest{
		Sender: req.Device.UserID, SenderDevice: req.Device.DeviceID, TxnID: txnID, Type: eventType, Messages: local,
	}); err != nil {
		return nil, err
	}
	for server, msgs := range remotes {
		if err := c.remote().SendToDevice(req.Context(), server, req.Device.UserID, eventType, txnID, msgs); err != nil {
			// Remote delivery is best effort until federation exists; the
			// local part is stored and must not be re-sent.
			c.log.Warn("to-device messages for a remote server dropped", "server", server, "err", err)
		}
	}
	return struct{}{}, nil
}
