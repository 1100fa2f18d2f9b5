package federation

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// The key endpoints: this server's keys, and the notary API answering for
// others from the cache, fetching when the cache falls short.

const keyPrefix = "/_matrix/key/v2"

func (f *Federation) registerKeyRoutes() {
	f.handleUnsigned("GET "+keyPrefix+"/server", f.onServerKeys)
	// The key ID in the path is a leftover of older versions: the answer
	// is the same.
	f.handleUnsigned("GET "+keyPrefix+"/server/{keyID}", f.onServerKeys)
	f.handleUnsigned("POST "+keyPrefix+"/query", f.onKeyQuery)
	f.handleUnsigned("GET "+keyPrefix+"/query/{serverName}", f.onKeyQueryServer)
}

func (f *Federation) onServerKeys(*InboundRequest) (any, error) {
	signed, err := f.signedOwnKeys(time.Now())
	if err != nil {
		return nil, err
	}
	return json.RawMessage(signed), nil
}

// keyCriteria is what a notary query asks of one key.
type keyCriteria struct {
	MinimumValidUntilTS spec.Timestamp `json:"minimum_valid_until_ts"`
}

type keyQueryResponse struct {
	ServerKeys []json.RawMessage `json:"server_keys"`
}

func (f *Federation) onKeyQuery(r *InboundRequest) (any, error) {
	var body struct {
		ServerKeys map[string]map[string]keyCriteria `json:"server_keys"`
	}
	if err := r.Decode(&body); err != nil {
		return nil, err
	}
	if body.ServerKeys == nil {
		return nil, mxerr.MissingParam("server_keys is required")
	}
	resp := keyQueryResponse{ServerKeys: []json.RawMessage{}}
	for server, keyIDs := range body.ServerKeys {
		answers, err := f.notaryAnswer(r.Context(), server, keyIDs)
		if err != nil {
			return nil, err
		}
		resp.ServerKeys = append(resp.ServerKeys, answers...)
	}
	return resp, nil
}

func (f *Federation) onKeyQueryServer(r *InboundRequest) (any, error) {
	var criteria keyCriteria
	if v := r.HTTP.URL.Query().Get("minimum_valid_until_ts"); v != "" {
		ts, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, mxerr.InvalidParam("minimum_valid_until_ts must be a timestamp in milliseconds")
		}
		criteria.MinimumValidUntilTS = spec.Timestamp(ts)
	}
	// No key ID: every key of the server, valid until the minimum asked.
	answers, err := f.notaryAnswer(r.Context(), r.HTTP.PathValue("serverName"), map[string]keyCriteria{"": criteria})
	if err != nil {
		return nil, err
	}
	return keyQueryResponse{ServerKeys: answers}, nil
}

// notaryAnswer is a server's key responses covering keyIDs (all its keys
// when none, or only ""), each signed by this server as well. The cache
// answers when it has every key asked valid until the minimum asked (now
// when unset); otherwise the server is asked (if it may be), and the
// cache answers anyway when it cannot be reached: old keys still verify
// old events.
func (f *Federation) notaryAnswer(ctx context.Context, server string, keyIDs map[string]keyCriteria) ([]json.RawMessage, error) {
	now := time.Now()
	if server == f.serverName {
		own, err := f.signedOwnKeys(now)
		if err != nil {
			return nil, err
		}
		return []json.RawMessage{own}, nil
	}
	minValid := spec.AsTimestamp(now)
	var wanted []gomatrixserverlib.KeyID
	for id, c := range keyIDs {
		minValid = max(minValid, c.MinimumValidUntilTS)
		if id != "" {
			wanted = append(wanted, gomatrixserverlib.KeyID(id))
		}
	}
	cached, err := f.keys.db.responses(ctx, server)
	if err != nil {
		return nil, err
	}
	name := spec.ServerName(server)
	if !covers(cached, wanted, minValid) && f.keys.fetchable(name) && f.cfg.FederationAllows(server) {
		if _, err := f.keys.fetchDirect(ctx, name); err == nil {
			if cached, err = f.keys.db.responses(ctx, server); err != nil {
				return nil, err
			}
		}
	}
	out := []json.RawMessage{} // an empty list, never null
	for _, c := range cached {
		if len(wanted) > 0 && !hasAnyKey(c, wanted) {
			continue
		}
		signed, err := f.sign(c.Raw)
		if err != nil {
			return nil, err
		}
		out = append(out, signed)
	}
	return out, nil
}

// covers tells whether the cached responses hold every wanted key (or
// any key when none is named) in a response valid until minValid.
func covers(cached []gomatrixserverlib.ServerKeys, wanted []gomatrixserverlib.KeyID, minValid spec.Timestamp) bool {
	fresh := func(id gomatrixserverlib.KeyID) bool {
		for _, c := range cached {
			if c.ValidUntilTS >= minValid && (id == "" || hasAnyKey(c, []gomatrixserverlib.KeyID{id})) {
				return true
			}
		}
		return false
	}
	if len(wanted) == 0 {
		return fresh("")
	}
	for _, id := range wanted {
		if !fresh(id) {
			return false
		}
	}
	return true
}

// hasAnyKey tells whether a key response lists one of ids, current or old.
func hasAnyKey(keys gomatrixserverlib.ServerKeys, ids []gomatrixserverlib.KeyID) bool {
	for _, id := range ids {
		if _, ok := keys.VerifyKeys[id]; ok {
			return true
		}
		if _, ok := keys.OldVerifyKeys[id]; ok {
			return true
		}
	}
	return false
}
