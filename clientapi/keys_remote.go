package clientapi

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/chappe-matrix/chappe/userapi"
)

// RemoteKeys reaches the users of other servers for E2EE. By default the
// federation component answers through its bus endpoints (fedRemoteKeys,
// keys_federation.go): with federation off nothing serves them, and the
// remote servers land in "failures". SetRemoteKeys installs another
// implementation for every clientapi of the process.
type RemoteKeys interface {
	// QueryKeys is /keys/query on server for the given users → devices.
	QueryKeys(ctx context.Context, server string, users map[string][]string) (*userapi.QueryKeysResponse, error)
	// ClaimKeys is /keys/claim on server: user → device → algorithm.
	ClaimKeys(ctx context.Context, server string, keys map[string]map[string]string) (*userapi.ClaimKeysResponse, error)
	// SendToDevice queues to-device messages for server's users.
	SendToDevice(ctx context.Context, server, sender, eventType, txnID string, messages map[string]map[string]json.RawMessage) error
}

var (
	remoteMu        sync.RWMutex
	installedRemote RemoteKeys
)

// SetRemoteKeys installs r instead of the federation's bus endpoints (nil
// restores them).
func SetRemoteKeys(r RemoteKeys) {
	remoteMu.Lock()
	defer remoteMu.Unlock()
	installedRemote = r
}

func (c *ClientAPI) remote() RemoteKeys {
	remoteMu.RLock()
	defer remoteMu.RUnlock()
	if installedRemote != nil {
		return installedRemote
	}
	return fedRemoteKeys{c.bus}
}

// perServer runs call for every server at once and waits for them all:
// one slow server costs the request its own delay, not the sum.
func perServer[T any](servers map[string]T, call func(server string, v T)) {
	var wg sync.WaitGroup
	for server, v := range servers {
		wg.Go(func() { call(server, v) })
	}
	wg.Wait()
}
