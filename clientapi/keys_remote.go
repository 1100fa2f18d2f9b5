package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/chappe-matrix/chappe/userapi"
)

// RemoteKeys reaches the users of other servers for E2EE. The federation
// component installs its implementation with SetRemoteKeys; until then
// noRemoteKeys answers, and remote users appear in "failures".
type RemoteKeys interface {
	// QueryKeys is /keys/query on server for the given users → devices.
	QueryKeys(ctx context.Context, server string, users map[string][]string) (*userapi.QueryKeysResponse, error)
	// ClaimKeys is /keys/claim on server: user → device → algorithm.
	ClaimKeys(ctx context.Context, server string, keys map[string]map[string]string) (*userapi.ClaimKeysResponse, error)
	// SendToDevice queues to-device messages for server's users.
	SendToDevice(ctx context.Context, server, sender, eventType, txnID string, messages map[string]map[string]json.RawMessage) error
}

// errNoFederation is what noRemoteKeys answers.
var errNoFederation = errors.New("federation is not available")

type noRemoteKeys struct{}

func (noRemoteKeys) QueryKeys(context.Context, string, map[string][]string) (*userapi.QueryKeysResponse, error) {
	return nil, errNoFederation
}

func (noRemoteKeys) ClaimKeys(context.Context, string, map[string]map[string]string) (*userapi.ClaimKeysResponse, error) {
	return nil, errNoFederation
}

func (noRemoteKeys) SendToDevice(context.Context, string, string, string, string, map[string]map[string]json.RawMessage) error {
	return errNoFederation
}

var (
	remoteMu   sync.RWMutex
	remoteKeys RemoteKeys = noRemoteKeys{}
)

// SetRemoteKeys installs the federation's RemoteKeys for every clientapi
// of the process.
func SetRemoteKeys(r RemoteKeys) {
	remoteMu.Lock()
	defer remoteMu.Unlock()
	remoteKeys = r
}

func remote() RemoteKeys {
	remoteMu.RLock()
	defer remoteMu.RUnlock()
	return remoteKeys
}
