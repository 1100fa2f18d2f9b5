package roomserver

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// createRoom implements /createRoom: it builds every event of the new room
// in the order the spec gives and commits them in one transaction. The
// room is new and nobody knows its ID yet, so it needs no room worker.
func (rs *Roomserver) createRoom(ctx context.Context, req *CreateRoomRequest) (*CreateRoomResponse, error) {
	version, err := rs.roomVersion(req.RoomVersion)
	if err != nil {
		return nil, err
	}
	if _, err := spec.NewUserID(req.Sender, true); err != nil {
		return nil, mxerr.InvalidParam("sender %q is not a valid user ID", req.Sender)
	}
	var alias *aliasRow
	if req.RoomAliasName != "" {
		if alias, err = rs.newAlias(ctx, req.RoomAliasName, req.Sender); err != nil {
			return nil, err
		}
	}
	plan, err := planRoom(req, version, alias)
	if err != nil {
		return nil, err
	}
	plan, remoteInvitees := rs.splitRemoteInvites(plan) // membership_remote.go
	var h *roomHead
	// Room version 12 derives the room ID from the create event, whose
	// timestamp is unique in this process (create_clock.go); a room of
	// another run created in the same millisecond is still possible after
	// a clock step back, and a second try gets another ID.
	for attempt := 0; ; attempt++ {
		h = &roomHead{version: version, state: stateMap{}}
		if !version.DomainlessRoomIDs() {
			h.id = "!" + randomString(18) + ":" + rs.serverName
		}
		err = rs.queue.outside(func() error {
			b := rs.newBatch(ctx, h)
			for _, es := range plan {
				p, err := b.build(es)
				if err != nil {
					return creationError(err)
				}
				if es.Type == spec.MRoomCreate && h.id == "" {
					// Room version 12: the room ID is the create event's hash.
					h.id = p.pdu.RoomID().String()
				}
				b.add(p)
			}
			return rs.commit(ctx, &commitRequest{
				head: h, events: b.events, extremities: b.extremities, depth: b.depth,
				newRoom: true, alias: alias, publish: req.Visibility == VisibilityPublic,
			})
		})
		if !errors.Is(err, errRoomIDTaken) || attempt == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	rs.heads.put(h.id, h)
	rs.inviteAfterCreation(ctx, req, h.id, remoteInvitees)
	resp := &CreateRoomResponse{RoomID: h.id}
	if alias != nil {
		resp.RoomAlias = alias.alias
	}
	return resp, nil
}

// roomVersion checks a requested version ("" is the configured default).
func (rs *Roomserver) roomVersion(v string) (gomatrixserverlib.IRoomVersion, error) {
	if v == "" {
		v = rs.defaultVersion
	}
	if !gomatrixserverlib.StableRoomVersion(gomatrixserverlib.RoomVersion(v)) {
		return nil, mxerr.UnsupportedRoomVersion("room version %q is not supported", v)
	}
	return gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(v))
}

// planRoom lists the events of a new room, in the spec's order: create,
// the creator's join, power levels, canonical alias, the preset's state
// (unless initial_state sets the same key), initial_state, name, topic,
// invites.
func planRoom(req *CreateRoomRequest, version gomatrixserverlib.IRoomVersion, alias *aliasRow) ([]eventSpec, error) {
	preset, err := resolvePreset(req)
	if err != nil {
		return nil, err
	}
	invitees, err := inviteesOf(req)
	if err != nil {
		return nil, err
	}
	for i, s := range req.InitialState {
		if s.Type == "" {
			return nil, mxerr.BadJSON("initial_state[%d] has no type", i)
		}
		if !isJSONObject(s.Content) {
			return nil, mxerr.BadJSON("initial_state[%d].content must be a JSON object", i)
		}
	}
	create, err := createContent(req, version, preset, invitees)
	if err != nil {
		return nil, err
	}
	powerLevels, err := powerLevelsContent(req, version, preset, invitees)
	if err != nil {
		return nil, err
	}
	sender := req.Sender
	state := func(t, sk string, content []byte) eventSpec {
		return eventSpec{Type: t, StateKey: &sk, Sender: sender, Content: content}
	}
	plan := []eventSpec{
		state(spec.MRoomCreate, "", create),
		state(spec.MRoomMember, sender, mustJSON(memberContent{
			Membership: spec.Join, DisplayName: req.SenderDisplayName, AvatarURL: req.SenderAvatarURL,
		})),
		state(spec.MRoomPowerLevels, "", powerLevels),
	}
	if alias != nil {
		plan = append(plan, state(spec.MRoomCanonicalAlias, "", mustJSON(map[string]string{"alias": alias.alias})))
	}
	initial := map[stateKey]bool{}
	for _, s := range req.InitialState {
		initial[stateKey{s.Type, s.StateKey}] = true
	}
	for _, s := range presetState(preset) {
		if !initial[stateKey{s.Type, s.StateKey}] {
			plan = append(plan, state(s.Type, s.StateKey, s.Content))
		}
	}
	for _, s := range req.InitialState {
		plan = append(plan, state(s.Type, s.StateKey, s.Content))
	}
	if req.Name != "" {
		plan = append(plan, state(spec.MRoomName, "", mustJSON(map[string]string{"name": req.Name})))
	}
	if req.Topic != "" {
		plan = append(plan, state(spec.MRoomTopic, "", topicContent(req.Topic)))
	}
	for _, u := range invitees {
		plan = append(plan, state(spec.MRoomMember, u, mustJSON(memberContent{Membership: spec.Invite, IsDirect: req.IsDirect})))
	}
	return plan, nil
}

// inviteesOf validates the invite list, without duplicates or the creator.
func inviteesOf(req *CreateRoomRequest) ([]string, error) {
	var out []string
	for _, u := range dedupe(req.Invite) {
		if _, err := spec.NewUserID(u, true); err != nil {
			return nil, mxerr.InvalidParam("invitee %q is not a valid user ID", u)
		}
		if u != req.Sender {
			out = append(out, u)
		}
	}
	return out, nil
}

// newAlias validates room_alias_name and checks the alias is free (the
// insert in the creation's transaction is the final check).
func (rs *Roomserver) newAlias(ctx context.Context, name, creator string) (*aliasRow, error) {
	if strings.ContainsAny(name, ":#") || strings.IndexFunc(name, isSpaceOrControl) >= 0 {
		return nil, mxerr.InvalidParam("room_alias_name %q may not contain ':', '#', spaces or control characters", name)
	}
	alias := "#" + name + ":" + rs.serverName
	if len(alias) > 255 {
		return nil, mxerr.InvalidParam("room alias %s is longer than 255 bytes", alias)
	}
	roomID, err := rs.reader.aliasRoom(ctx, alias)
	if err != nil {
		return nil, err
	}
	if roomID != "" {
		return nil, errRoomInUse(alias)
	}
	return &aliasRow{alias: alias, creator: creator}, nil
}

func errRoomInUse(alias string) error {
	return mxerr.New(http.StatusBadRequest, "M_ROOM_IN_USE", "room alias %s is already taken", alias)
}

// creationError reports an event of the creation that the auth rules
// refused (a bad power_level_content_override, say) as the spec's
// M_INVALID_ROOM_STATE.
func creationError(err error) error {
	if me, ok := mxerr.As(err); ok && me.Code == "M_FORBIDDEN" {
		return mxerr.New(http.StatusBadRequest, "M_INVALID_ROOM_STATE", "%s", me.Message)
	}
	return err
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// randomString is a random ASCII-letter string (room ID localparts).
func randomString(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(errors.New("crypto/rand failed")) // never happens on supported platforms
	}
	for i := range buf {
		buf[i] = letters[int(buf[i])%len(letters)]
	}
	return string(buf)
}
