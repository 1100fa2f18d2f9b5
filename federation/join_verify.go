package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync/atomic"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// The events of a send_join answer are checked here once each, on every
// core: the library's path (NewEventFromUntrustedJSON, then EventID, then
// VerifyEventSignatures) redacts and canonicalises each event three times
// and looks its keys up once per event; on a room of 100,000 state events
// that was half the join. Here an event is parsed by the library (canonical
// JSON, content hash: a wrong hash leaves the redacted event, as the spec
// asks), then redacted and canonicalised once: those bytes are what its
// reference hash (the event ID) and its signatures cover. Each key is
// looked up once for the answer (keyBatch).
//
// The checks are done in two passes: parseAnswerEvents reads every event
// (the IDs and auth events order the answer), then verifyAnswerSignatures
// checks the signatures of a part of them, just before the part is stored
// (join_parts.go), so that the roomserver stores a part while the next one
// is checked. Every event is checked before it is stored; any that fails
// makes the answer unusable.

// answerEvent is an event of a send_join answer with its ID, which the PDU
// was not asked for (asking would hash the event again).
type answerEvent struct {
	pdu   gomatrixserverlib.PDU
	id    string
	state bool // in the answer's state (else only in its auth chain)

	// What verifyAnswerSignatures checks, dropped once it has.
	signed  []byte
	signers []spec.ServerName
	sigs    []serverSig // the signers' ed25519 signatures
}

// serverSig is a server's signature of an event with one of its keys.
type serverSig struct {
	server spec.ServerName
	keyID  gomatrixserverlib.KeyID
	sig    []byte
}

// parseAnswerEvents reads the events of a send_join answer for roomID,
// each distinct event once: valid events of the room (content hashes
// checked), with their IDs, signatures not checked yet.
func parseAnswerEvents(ctx context.Context, roomID string, impl gomatrixserverlib.IRoomVersion, keys *keyBatch, state, chain []json.RawMessage) ([]*answerEvent, error) {
	raws, inState := distinctEvents(state, chain)
	out := make([]*answerEvent, len(raws))
	err := onEveryCoreUntilError(len(raws), func(i int) error {
		ev, err := parseAnswerEvent(ctx, impl, keys, raws[i])
		if err == nil && ev.pdu.RoomID().String() != roomID {
			err = fmt.Errorf("event %s is of room %s", ev.id, ev.pdu.RoomID().String())
		}
		if err != nil {
			return err
		}
		ev.state = inState[i]
		out[i] = ev
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// verifyAnswerSignatures checks the signatures of events that
// parseAnswerEvents read, on every core.
func verifyAnswerSignatures(ctx context.Context, impl gomatrixserverlib.IRoomVersion, keys *keyBatch, evs []*answerEvent) error {
	return onEveryCoreUntilError(len(evs), func(i int) error {
		ev := evs[i]
		for _, server := range ev.signers {
			if err := verifyServerSignature(ctx, impl, keys, ev.pdu.OriginServerTS(), server, ev.sigs, ev.signed); err != nil {
				return fmt.Errorf("signatures of %s: %w", ev.id, err)
			}
		}
		ev.signed, ev.sigs, ev.signers = nil, nil, nil
		return nil
	})
}

// onEveryCoreUntilError is onEveryCore for calls that may fail: the first
// error stops the calls not started yet and is returned.
func onEveryCoreUntilError(n int, fn func(i int) error) error {
	var failed atomic.Pointer[error]
	onEveryCore(n, func(i int) {
		if failed.Load() != nil {
			return
		}
		if err := fn(i); err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	})
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// distinctEvents lists the answer's events once each (an event is often in
// both the state and the auth chain), telling which are state.
func distinctEvents(state, chain []json.RawMessage) ([]json.RawMessage, []bool) {
	seed := maphash.MakeSeed()
	index := make(map[uint64][]int, len(state)+len(chain))
	raws := make([]json.RawMessage, 0, len(state)+len(chain))
	var inState []bool
	add := func(raw json.RawMessage, isState bool) {
		h := maphash.Bytes(seed, raw)
		for _, i := range index[h] {
			if string(raws[i]) == string(raw) {
				inState[i] = inState[i] || isState
				return
			}
		}
		index[h] = append(index[h], len(raws))
		raws = append(raws, raw)
		inState = append(inState, isState)
	}
	for _, raw := range state {
		add(raw, true)
	}
	for _, raw := range chain {
		add(raw, false)
	}
	return raws, inState
}

// parseAnswerEvent is the spec's checks on receipt of a PDU 1 and 2 on one
// event, and what check 3 needs: a valid event of the room version, its
// content hash (else it is redacted), the servers that must sign it and
// the bytes they signed.
func parseAnswerEvent(ctx context.Context, impl gomatrixserverlib.IRoomVersion, keys *keyBatch, raw []byte) (*answerEvent, error) {
	ev, err := impl.NewEventFromUntrustedJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid event: %w", err)
	}
	if impl.Version() == gomatrixserverlib.RoomVersionPseudoIDs {
		// Signers are pseudonymous keys there: the library's path, now.
		if err := gomatrixserverlib.VerifyEventSignatures(ctx, ev, keys.ring, userIDForSender); err != nil {
			return nil, fmt.Errorf("signatures of %s: %w", ev.EventID(), err)
		}
		return &answerEvent{pdu: ev, id: ev.EventID()}, nil
	}
	redacted, err := impl.RedactEventJSON(ev.JSON())
	if err != nil {
		return nil, fmt.Errorf("redact event: %w", err)
	}
	signed, sigs, err := signedBytes(redacted)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	id, err := eventIDOf(impl, ev, signed)
	if err != nil {
		return nil, err
	}
	signers, err := requiredSigners(impl, ev, id)
	if err != nil {
		return nil, fmt.Errorf("signatures of %s: %w", id, err)
	}
	// Kept until checked: the signers' ed25519 signatures only.
	var kept []serverSig
	for _, server := range signers {
		for keyID, sig := range sigs[string(server)] {
			if strings.HasPrefix(keyID, "ed25519:") {
				kept = append(kept, serverSig{server: server, keyID: gomatrixserverlib.KeyID(keyID), sig: sig})
			}
		}
	}
	return &answerEvent{pdu: ev, id: id, signed: signed, signers: signers, sigs: kept}, nil
}

// signedBytes is what an event's signatures and reference hash cover, from
// its redacted JSON: the canonical JSON without signatures and unsigned;
// and the signatures.
func signedBytes(redacted []byte) ([]byte, map[string]map[string]spec.Base64Bytes, error) {
	var sigs map[string]map[string]spec.Base64Bytes
	if raw := gjson.GetBytes(redacted, "signatures"); raw.Exists() {
		if err := json.Unmarshal([]byte(raw.Raw), &sigs); err != nil {
			return nil, nil, fmt.Errorf("signatures: %w", err)
		}
	}
	// A redacted event has no unsigned section left.
	stripped, err := sjson.DeleteBytes(redacted, "signatures")
	if err != nil {
		return nil, nil, err
	}
	return gomatrixserverlib.CanonicalJSONAssumeValid(stripped), sigs, nil
}

// eventIDOf is the event's ID: the reference hash of its signed bytes, or
// the event_id it carries in room versions 1 and 2.
func eventIDOf(impl gomatrixserverlib.IRoomVersion, ev gomatrixserverlib.PDU, signed []byte) (string, error) {
	var enc *base64.Encoding
	switch impl.EventIDFormat() {
	case gomatrixserverlib.EventIDFormatV1:
		return ev.EventID(), nil // read from the JSON, not hashed
	case gomatrixserverlib.EventIDFormatV2:
		enc = base64.RawStdEncoding
	case gomatrixserverlib.EventIDFormatV3:
		enc = base64.RawURLEncoding
	default:
		return "", fmt.Errorf("room version %s has an unknown event ID format", impl.Version())
	}
	sum := sha256.Sum256(signed)
	return "$" + enc.EncodeToString(sum[:]), nil
}

// requiredSigners are the servers whose signatures an event needs, as
// gomatrixserverlib.VerifyEventSignatures lists them (room versions
// without pseudonymous senders): the sender's, in room versions 1 and 2
// the event ID's, for an invite the invitee's, for a restricted join the
// authorising server's.
func requiredSigners(impl gomatrixserverlib.IRoomVersion, ev gomatrixserverlib.PDU, id string) ([]spec.ServerName, error) {
	var out []spec.ServerName
	add := func(s spec.ServerName) {
		for _, have := range out {
			if have == s {
				return
			}
		}
		out = append(out, s)
	}
	sender, err := userIDForSender(ev.RoomID(), ev.SenderID())
	if err != nil {
		return nil, fmt.Errorf("invalid sender: %w", err)
	}
	add(sender.Domain())
	if impl.EventIDFormat() == gomatrixserverlib.EventIDFormatV1 {
		_, server, err := gomatrixserverlib.SplitID('$', id)
		if err != nil {
			return nil, err
		}
		add(server)
	}
	if ev.Type() != spec.MRoomMember {
		return out, nil
	}
	membership, err := ev.Membership()
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	switch membership {
	case spec.Invite:
		if ev.StateKey() == nil {
			return nil, errors.New("an invite without a state key")
		}
		_, server, err := gomatrixserverlib.SplitID('@', *ev.StateKey())
		if err != nil {
			return nil, err
		}
		add(server)
	case spec.Join:
		server, err := impl.RestrictedJoinServername(ev.Content())
		if err != nil {
			return nil, err
		}
		if server != "" {
			add(server)
		}
	}
	return out, nil
}

// verifyServerSignature checks that one of server's ed25519 signatures of
// signed (among sigs) verifies with its key, valid at the event's time
// (the ring's checkUsingKeys).
func verifyServerSignature(ctx context.Context, impl gomatrixserverlib.IRoomVersion, keys *keyBatch, atTS spec.Timestamp,
	server spec.ServerName, sigs []serverSig, signed []byte) error {
	err := fmt.Errorf("not signed by %s with a supported algorithm", server)
	for _, s := range sigs {
		if s.server != server {
			continue
		}
		res, found, lookupErr := keys.key(ctx, gomatrixserverlib.PublicKeyLookupRequest{ServerName: server, KeyID: s.keyID}, atTS)
		switch {
		case lookupErr != nil:
			return lookupErr
		case !found:
			err = fmt.Errorf("could not download key %s of %s", s.keyID, server)
		case !res.WasValidAt(atTS, impl.SignatureValidityCheck):
			err = fmt.Errorf("key %s of %s not valid at %d", s.keyID, server, atTS)
		case len(res.Key) != ed25519.PublicKeySize || len(s.sig) != ed25519.SignatureSize:
			err = fmt.Errorf("bad key or signature length for %s of %s", s.keyID, server)
		case !ed25519.Verify(ed25519.PublicKey(res.Key), signed, s.sig):
			err = fmt.Errorf("bad signature from %s with %s", server, s.keyID)
		default:
			return nil
		}
	}
	return err
}
