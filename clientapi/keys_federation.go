package clientapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// fedRemoteKeys is RemoteKeys through the federation component's fedapi
// endpoints. With federation off nothing serves them, and remote users
// land in "failures".
type fedRemoteKeys struct{ bus *bus.Bus }

// serverFailure is the failure the federation reported for server, if any.
func serverFailure(failures map[string]json.RawMessage, server string) error {
	raw, ok := failures[server]
	if !ok {
		return nil
	}
	var f struct {
		Code    string `json:"errcode"`
		Message string `json:"error"`
	}
	if json.Unmarshal(raw, &f) != nil || f.Code == "" {
		return mxerr.New(http.StatusBadGateway, "M_UNKNOWN", "%s failed", server)
	}
	return &mxerr.Error{Status: http.StatusBadGateway, Code: f.Code, Message: f.Message}
}

func (r fedRemoteKeys) QueryKeys(ctx context.Context, server string, users map[string][]string) (*userapi.QueryKeysResponse, error) {
	resp, err := fedapi.QueryKeys.Call(ctx, r.bus, &fedapi.QueryKeysRequest{DeviceKeys: users})
	if err != nil {
		return nil, err
	}
	if err := serverFailure(resp.Failures, server); err != nil {
		return nil, err
	}
	return &userapi.QueryKeysResponse{DeviceKeys: resp.DeviceKeys, MasterKeys: resp.MasterKeys, SelfSigningKeys: resp.SelfSigningKeys}, nil
}

func (r fedRemoteKeys) ClaimKeys(ctx context.Context, server string, keys map[string]map[string]string) (*userapi.ClaimKeysResponse, error) {
	resp, err := fedapi.ClaimKeys.Call(ctx, r.bus, &fedapi.ClaimKeysRequest{OneTimeKeys: keys})
	if err != nil {
		return nil, err
	}
	if err := serverFailure(resp.Failures, server); err != nil {
		return nil, err
	}
	return &userapi.ClaimKeysResponse{OneTimeKeys: resp.OneTimeKeys}, nil
}

func (r fedRemoteKeys) SendToDevice(ctx context.Context, server, sender, eventType, txnID string, messages map[string]map[string]json.RawMessage) error {
	_, err := fedapi.SendToDevice.Call(ctx, r.bus, &fedapi.SendToDeviceRequest{
		Server: server, Sender: sender, Type: eventType, TxnID: txnID, Messages: messages,
	})
	return err
}
