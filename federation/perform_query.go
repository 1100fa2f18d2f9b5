package federation

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"sync"

	"github.com/chappe-matrix/chappe/federation/fedapi"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
)

// byServer groups a map keyed by user ID by the users' servers.
func byServer[V any](in map[string]V) map[string]map[string]V {
	out := map[string]map[string]V{}
	for user, v := range in {
		s := mxid.ServerOf(user)
		if out[s] == nil {
			out[s] = map[string]V{}
		}
		out[s][user] = v
	}
	return out
}

// eachServer runs ask for every server in parallel; a server refused or
// failing gets its entry in failures.
func (f *Federation) eachServer(servers []string, ask func(server string) error) map[string]json.RawMessage {
	var mu sync.Mutex
	failures := map[string]json.RawMessage{}
	var wg sync.WaitGroup
	for _, server := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.allowed(server)
			if err == nil {
				err = remoteErr(server, ask(server))
			}
			if err != nil {
				mu.Lock()
				failures[server] = failureJSON(err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failures
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ownEntries keeps the entries of users of server: a server answers for
// its own users only.
func ownEntries[V any](in map[string]V, server string) map[string]V {
	out := make(map[string]V, len(in))
	for user, v := range in {
		if mxid.ServerOf(user) == server {
			out[user] = v
		}
	}
	return out
}

func (f *Federation) queryKeys(ctx context.Context, req *fedapi.QueryKeysRequest) (*fedapi.QueryKeysResponse, error) {
	resp := &fedapi.QueryKeysResponse{
		DeviceKeys: map[string]map[string]json.RawMessage{}, MasterKeys: map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
	}
	var mu sync.Mutex
	groups := byServer(req.DeviceKeys)
	resp.Failures = f.eachServer(keysOf(groups), func(server string) error {
		var answer fedapi.QueryKeysResponse
		if err := f.doSigned(ctx, "POST", server, v1+"/user/keys/query", map[string]any{"device_keys": groups[server]}, &answer); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for u, d := range ownEntries(answer.DeviceKeys, server) {
			resp.DeviceKeys[u] = d
		}
		for u, k := range ownEntries(answer.MasterKeys, server) {
			resp.MasterKeys[u] = k
		}
		for u, k := range ownEntries(answer.SelfSigningKeys, server) {
			resp.SelfSigningKeys[u] = k
		}
		return nil
	})
	return resp, nil
}

func (f *Federation) claimKeys(ctx context.Context, req *fedapi.ClaimKeysRequest) (*fedapi.ClaimKeysResponse, error) {
	resp := &fedapi.ClaimKeysResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}}
	var mu sync.Mutex
	groups := byServer(req.OneTimeKeys)
	resp.Failures = f.eachServer(keysOf(groups), func(server string) error {
		var answer fedapi.ClaimKeysResponse
		if err := f.doSigned(ctx, "POST", server, v1+"/user/keys/claim", map[string]any{"one_time_keys": groups[server]}, &answer); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for u, d := range ownEntries(answer.OneTimeKeys, server) {
			resp.OneTimeKeys[u] = d
		}
		return nil
	})
	return resp, nil
}

func (f *Federation) queryProfile(ctx context.Context, req *fedapi.QueryProfileRequest) (*fedapi.QueryProfileResponse, error) {
	if !mxid.UserID(req.UserID) {
		return nil, mxerr.InvalidParam("%q is not a user ID", req.UserID)
	}
	server := mxid.ServerOf(req.UserID)
	if err := f.allowed(server); err != nil {
		return nil, err
	}
	q := url.Values{"user_id": {req.UserID}}
	if req.Field != "" {
		q.Set("field", req.Field)
	}
	profile := map[string]json.RawMessage{}
	if err := f.doSigned(ctx, "GET", server, v1+"/query/profile?"+q.Encode(), nil, &profile); err != nil {
		return nil, remoteErr(server, err)
	}
	for k, v := range profile {
		if string(v) == "null" { // "null" means unset, as absent does
			delete(profile, k)
		}
	}
	return &fedapi.QueryProfileResponse{Profile: profile}, nil
}

func (f *Federation) queryDirectory(ctx context.Context, req *fedapi.QueryDirectoryRequest) (*fedapi.QueryDirectoryResponse, error) {
	if !mxid.RoomAlias(req.Alias) {
		return nil, mxerr.InvalidParam("%q is not a room alias", req.Alias)
	}
	server := mxid.ServerOf(req.Alias)
	if err := f.allowed(server); err != nil {
		return nil, err
	}
	var answer fedapi.QueryDirectoryResponse
	q := url.Values{"room_alias": {req.Alias}}
	if err := f.doSigned(ctx, "GET", server, v1+"/query/directory?"+q.Encode(), nil, &answer); err != nil {
		return nil, remoteErr(server, err)
	}
	if !mxid.RoomID(answer.RoomID) {
		return nil, mxerr.New(502, "M_UNKNOWN", "%s answered no room ID for %s", server, req.Alias)
	}
	return &answer, nil
}

// queryPublicRooms reads another server's directory: GET when nothing
// needs a body, POST with the filter otherwise.
func (f *Federation) queryPublicRooms(ctx context.Context, req *fedapi.QueryPublicRoomsRequest) (*json.RawMessage, error) {
	if err := f.allowed(req.Server); err != nil {
		return nil, err
	}
	var answer json.RawMessage
	var err error
	if len(req.Filter) > 0 || req.IncludeAllNetworks || req.ThirdPartyInstanceID != "" {
		body := map[string]any{"limit": req.Limit, "since": req.Since, "include_all_networks": req.IncludeAllNetworks}
		if len(req.Filter) > 0 {
			body["filter"] = req.Filter
		}
		if req.ThirdPartyInstanceID != "" {
			body["third_party_instance_id"] = req.ThirdPartyInstanceID
		}
		err = f.doSigned(ctx, "POST", req.Server, v1+"/publicRooms", body, &answer)
	} else {
		q := url.Values{}
		if req.Limit > 0 {
			q.Set("limit", strconv.Itoa(req.Limit))
		}
		if req.Since != "" {
			q.Set("since", req.Since)
		}
		err = f.doSigned(ctx, "GET", req.Server, v1+"/publicRooms?"+q.Encode(), nil, &answer)
	}
	if err != nil {
		return nil, remoteErr(req.Server, err)
	}
	return &answer, nil
}
