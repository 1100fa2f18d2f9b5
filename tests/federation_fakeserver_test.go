package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// A remote homeserver played by the test, for the federation benchmarks:
// it has its own ed25519 key (served on /_matrix/key/v2/server), hosts
// rooms whose events it builds and signs itself, answers make_join and
// send_join v2 for them, takes whatever Chappe sends it, and sends
// transactions to Chappe. It checks nothing it receives: it measures
// Chappe, it is not a homeserver.

// fakeRemote is one remote server.
type fakeRemote struct {
	name   string
	keyID  string
	key    ed25519.PrivateKey
	srv    *httptest.Server
	caFile string // its self-signed certificate, for Chappe's extra_ca_files

	mu    sync.Mutex
	rooms map[string]*fakeRoom
	// roomSeq numbers the rooms the fake builds, for their create events.
	roomSeq atomic.Int64

	received atomic.Int64 // transactions Chappe sent it
	// When Chappe's make_join and send_join came, and when the send_join
	// answer was written (Unix ns), to split a join's time.
	makeJoinAt, sendJoinAt, answeredAt atomic.Int64

	// Set by connectFakes: the way to Chappe.
	toChappe *http.Client
	chappe   *testserver.Server
}

// newFakeRemote starts a remote server called name. Its key comes from
// the name, so rooms generated in an earlier run stay valid.
func newFakeRemote(t testing.TB, name string) *fakeRemote {
	t.Helper()
	seed := sha256.Sum256([]byte("chappe federation bench " + name))
	f := &fakeRemote{
		name: name, keyID: "ed25519:bench",
		key:   ed25519.NewKeyFromSeed(seed[:]),
		rooms: map[string]*fakeRoom{},
	}
	cert, file := selfSignedCert(t, name)
	f.caFile = file
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/key/v2/server", f.onKeys)
	mux.HandleFunc("GET /_matrix/key/v2/server/{keyID}", f.onKeys)
	mux.HandleFunc("GET /_matrix/federation/v1/make_join/{roomId}/{userId}", f.onMakeJoin)
	mux.HandleFunc("PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}", f.onSendJoin)
	mux.HandleFunc("PUT /_matrix/federation/v1/send/{txnId}", f.onSend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fakeAnswer(w, http.StatusNotFound, map[string]string{"errcode": "M_UNRECOGNIZED", "error": "not played by the fake"})
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// addr is the fake's listener, for Chappe's host map.
func (f *fakeRemote) addr() string { return strings.TrimPrefix(f.srv.URL, "https://") }

// fakeOptions lets a Chappe test server talk to the fakes: it trusts
// their certificates and allows them (the host map is set once it runs:
// see connectFakes).
func fakeOptions(fakes ...*fakeRemote) testserver.Option {
	return func(c *config.Config) {
		for _, f := range fakes {
			c.Federation.ExtraCAFiles = append(c.Federation.ExtraCAFiles, f.caFile)
			c.Federation.AllowedServers = append(c.Federation.AllowedServers, f.name)
		}
	}
}

// connectFakes tells Chappe where the fakes are, and the fakes where
// Chappe is.
func connectFakes(t testing.TB, chappe *testserver.Server, fakes ...*fakeRemote) {
	t.Helper()
	hostMap := map[string]string{chappe.Config.ServerName: chappe.FederationAddr()}
	for _, f := range fakes {
		hostMap[f.name] = f.addr()
	}
	chappe.Server.Federation.SetHostMap(hostMap)
	pemData, err := os.ReadFile(chappe.Config.Federation.ExtraCAFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	for _, f := range fakes {
		f.chappe = chappe
		f.toChappe = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: chappe.Config.ServerName},
			MaxIdleConnsPerHost: 16,
		}}
	}
}

func (f *fakeRemote) onKeys(w http.ResponseWriter, _ *http.Request) {
	fields := gomatrixserverlib.ServerKeyFields{
		ServerName:    spec.ServerName(f.name),
		ValidUntilTS:  spec.AsTimestamp(time.Now().Add(24 * time.Hour)),
		VerifyKeys:    map[gomatrixserverlib.KeyID]gomatrixserverlib.VerifyKey{gomatrixserverlib.KeyID(f.keyID): {Key: spec.Base64Bytes(f.key.Public().(ed25519.PublicKey))}},
		OldVerifyKeys: map[gomatrixserverlib.KeyID]gomatrixserverlib.OldVerifyKey{},
	}
	data, err := json.Marshal(fields)
	if err == nil {
		data, err = gomatrixserverlib.SignJSON(f.name, gomatrixserverlib.KeyID(f.keyID), f.key, data)
	}
	if err != nil {
		fakeAnswer(w, http.StatusInternalServerError, map[string]string{"errcode": "M_UNKNOWN", "error": err.Error()})
		return
	}
	fakeAnswer(w, http.StatusOK, json.RawMessage(data))
}

func (f *fakeRemote) room(roomID string) *fakeRoom {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[roomID]
}

// onMakeJoin answers a join template on the room's head.
func (f *fakeRemote) onMakeJoin(w http.ResponseWriter, r *http.Request) {
	room := f.room(r.PathValue("roomId"))
	if room == nil {
		fakeAnswer(w, http.StatusNotFound, map[string]string{"errcode": "M_NOT_FOUND", "error": "no such room"})
		return
	}
	f.makeJoinAt.Store(time.Now().UnixNano())
	userID := r.PathValue("userId")
	room.mu.Lock()
	b := room.b
	template := map[string]any{
		"type": spec.MRoomMember, "room_id": b.roomID, "sender": userID, "state_key": userID,
		"content":     map[string]string{"membership": spec.Join},
		"prev_events": []string{b.head}, "auth_events": b.authIDs(spec.MRoomPowerLevels, spec.MRoomJoinRules),
		"depth": b.depth + 1, "origin_server_ts": time.Now().UnixMilli(),
	}
	room.mu.Unlock()
	fakeAnswer(w, http.StatusOK, map[string]any{"room_version": string(b.impl.Version()), "event": template})
}

// onSendJoin adds the join (signed by the fake too) to the room and
// answers the state before it, prepared when the room was made.
func (f *fakeRemote) onSendJoin(w http.ResponseWriter, r *http.Request) {
	room := f.room(r.PathValue("roomId"))
	if room == nil {
		fakeAnswer(w, http.StatusNotFound, map[string]string{"errcode": "M_NOT_FOUND", "error": "no such room"})
		return
	}
	f.sendJoinAt.Store(time.Now().UnixNano())
	defer func() { f.answeredAt.Store(time.Now().UnixNano()) }()
	body, err := io.ReadAll(r.Body)
	var join gomatrixserverlib.PDU
	if err == nil {
		join, err = room.b.impl.NewEventFromUntrustedJSON(body)
	}
	if err != nil {
		fakeAnswer(w, http.StatusBadRequest, map[string]string{"errcode": "M_BAD_JSON", "error": err.Error()})
		return
	}
	join = join.Sign(f.name, gomatrixserverlib.KeyID(f.keyID), f.key)
	room.mu.Lock()
	room.b.track(join)
	room.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	var out bytes.Buffer
	out.Grow(len(room.stateJSON) + len(room.chainJSON) + len(join.JSON()) + 100)
	fmt.Fprintf(&out, `{"origin":%q,"members_omitted":false,"event":%s,"auth_chain":%s,"state":%s}`, f.name, join.JSON(), room.chainJSON, room.stateJSON)
	_, _ = w.Write(out.Bytes())
}

// onSend takes Chappe's transactions (its presence, device lists, …).
func (f *fakeRemote) onSend(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.received.Add(1)
	fakeAnswer(w, http.StatusOK, map[string]any{"pdus": map[string]any{}})
}

func fakeAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// sendTxn sends a transaction of PDUs to Chappe, signed with the fake's
// key, and returns the errors Chappe gave by event ID.
func (f *fakeRemote) sendTxn(ctx context.Context, txnID string, pdus []json.RawMessage) (map[string]string, error) {
	path := "/_matrix/federation/v1/send/" + txnID
	dest := f.chappe.Config.ServerName
	fr := fclient.NewFederationRequest("PUT", spec.ServerName(f.name), spec.ServerName(dest), path)
	if err := fr.SetContent(map[string]any{"origin": f.name, "origin_server_ts": time.Now().UnixMilli(), "pdus": pdus, "edus": []any{}}); err != nil {
		return nil, err
	}
	if err := fr.Sign(spec.ServerName(f.name), gomatrixserverlib.KeyID(f.keyID), f.key); err != nil {
		return nil, err
	}
	signed, err := fr.HTTPRequest()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "PUT", "https://"+f.chappe.FederationAddr()+path, signed.Body)
	if err != nil {
		return nil, err
	}
	req.Header = signed.Header.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.toChappe.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("send %s: %d %s", txnID, resp.StatusCode, data)
	}
	var answer struct {
		PDUs map[string]struct {
			Error string `json:"error"`
		} `json:"pdus"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, fmt.Errorf("send %s answer %s: %w", txnID, data, err)
	}
	errs := map[string]string{}
	for id, res := range answer.PDUs {
		if res.Error != "" {
			errs[id] = res.Error
		}
	}
	return errs, nil
}

// fakeRoom is a room the fake hosts: its builder (head, auth state) and
// the send_join answer's arrays, serialised once.
type fakeRoom struct {
	mu                   sync.Mutex
	b                    *roomBuilder
	stateJSON, chainJSON []byte
}

// host makes the room the fake's, with the state and auth chain that
// send_join answers (every event given is state: each has its own key).
// Two rooms with one ID would be one room to Chappe, with two histories:
// refused.
func (f *fakeRemote) host(t testing.TB, b *roomBuilder, state []json.RawMessage, chainIDs map[string]bool) *fakeRoom {
	t.Helper()
	room := &fakeRoom{b: b}
	var st, ch bytes.Buffer
	st.WriteByte('[')
	ch.WriteByte('[')
	for i, raw := range state {
		if i > 0 {
			st.WriteByte(',')
		}
		st.Write(raw)
	}
	first := true
	for _, ev := range b.kept {
		if chainIDs[ev.EventID()] {
			if !first {
				ch.WriteByte(',')
			}
			first = false
			ch.Write(ev.JSON())
		}
	}
	st.WriteByte(']')
	ch.WriteByte(']')
	room.stateJSON, room.chainJSON = st.Bytes(), ch.Bytes()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rooms[b.roomID] != nil {
		t.Fatalf("%s hosts room %s already", f.name, b.roomID)
	}
	f.rooms[b.roomID] = room
	return room
}

// roomBuilder builds a room's events one after the other (a line: each
// event's prev is the one before), signed by origin, with the auth
// events the auth rules ask for, checked against them.
type roomBuilder struct {
	origin string
	keyID  gomatrixserverlib.KeyID
	key    ed25519.PrivateKey
	impl   gomatrixserverlib.IRoomVersion
	admin  string // the creator
	// seq makes the create event, hence the room ID, unique: a version 12
	// room's ID is its create event's hash, and two rooms of one creator
	// begun in the same millisecond would otherwise have one ID.
	seq int64

	roomID string
	head   string
	depth  int64
	// state holds the events auth rules look at (create, power levels,
	// join rules, the members that send events), not every member.
	state map[string]gomatrixserverlib.PDU
	kept  []gomatrixserverlib.PDU // the events of state, in order
}

func newRoomBuilder(f *fakeRemote, version gomatrixserverlib.RoomVersion) *roomBuilder {
	return &roomBuilder{
		origin: f.name, keyID: gomatrixserverlib.KeyID(f.keyID), key: f.key,
		impl:  gomatrixserverlib.MustGetRoomVersion(version),
		admin: "@admin:" + f.name,
		seq:   f.roomSeq.Add(1),
		state: map[string]gomatrixserverlib.PDU{},
	}
}

func stateTuple(typ, key string) string { return typ + "\x00" + key }

// authIDs lists the IDs of the state events of these types (empty state
// keys) the room has, without the create event where the room version
// implies it.
func (b *roomBuilder) authIDs(types ...string) []string {
	ids := []string{}
	for _, typ := range types {
		if ev := b.state[stateTuple(typ, "")]; ev != nil {
			ids = append(ids, ev.EventID())
		}
	}
	return ids
}

// add builds, signs, checks and appends one event.
func (b *roomBuilder) add(sender, typ string, stateKey *string, content any) (gomatrixserverlib.PDU, error) {
	proto := gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: b.roomID, Type: typ, StateKey: stateKey,
		PrevEvents: []string{}, Depth: b.depth + 1, Version: b.impl,
	}
	if b.head != "" {
		proto.PrevEvents = []string{b.head}
	}
	if err := proto.SetContent(content); err != nil {
		return nil, err
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
	if err != nil {
		return nil, err
	}
	var auth []gomatrixserverlib.PDU
	authIDs := []string{}
	for _, tup := range needed.Tuples() {
		ev := b.state[stateTuple(tup.EventType, tup.StateKey)]
		if ev == nil {
			continue
		}
		auth = append(auth, ev)
		if tup.EventType != spec.MRoomCreate || !b.impl.DomainlessRoomIDs() {
			authIDs = append(authIDs, ev.EventID())
		}
	}
	proto.AuthEvents = authIDs
	if typ == spec.MRoomCreate && b.impl.DomainlessRoomIDs() {
		proto.RoomID = ""
	}
	ev, err := b.impl.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), spec.ServerName(b.origin), b.keyID, b.key)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", typ, err)
	}
	provider, err := gomatrixserverlib.NewAuthEvents(auth)
	if err != nil {
		return nil, err
	}
	if err := gomatrixserverlib.Allowed(ev, provider, userIDForSenderT); err != nil {
		return nil, fmt.Errorf("%s not allowed: %w", typ, err)
	}
	b.track(ev)
	return ev, nil
}

// track moves the head to ev and keeps it when auth rules may need it.
func (b *roomBuilder) track(ev gomatrixserverlib.PDU) {
	if b.roomID == "" {
		b.roomID = ev.RoomID().String()
	}
	b.head, b.depth = ev.EventID(), max(b.depth, ev.Depth())
	sk := ev.StateKey()
	if sk == nil {
		return
	}
	switch ev.Type() {
	case spec.MRoomCreate, spec.MRoomPowerLevels, spec.MRoomJoinRules:
	case spec.MRoomMember:
		// The generated members never send anything: forget them.
		if *sk != b.admin && strings.HasSuffix(*sk, ":"+b.origin) {
			return
		}
	default:
		return
	}
	b.state[stateTuple(ev.Type(), *sk)] = ev
	b.kept = append(b.kept, ev)
}

func userIDForSenderT(_ spec.RoomID, sender spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(sender), true)
}

// begin makes the start every generated room has: create, the creator's
// join, power levels (state events need 50), public join rules, shared
// history.
func (b *roomBuilder) begin() ([]gomatrixserverlib.PDU, error) {
	empty := ""
	admin := b.admin
	steps := []struct {
		typ      string
		stateKey *string
		content  any
	}{
		{spec.MRoomCreate, &empty, map[string]any{"room_version": string(b.impl.Version()), "fr.chappe.bench.room": b.seq}},
		{spec.MRoomMember, &admin, map[string]any{"membership": spec.Join}},
		{spec.MRoomPowerLevels, &empty, map[string]any{"users": map[string]int{}, "users_default": 0, "events_default": 0, "state_default": 50,
			"ban": 50, "kick": 50, "redact": 50, "invite": 0}},
		{spec.MRoomJoinRules, &empty, map[string]any{"join_rule": spec.Public}},
		{spec.MRoomHistoryVisibility, &empty, map[string]any{"history_visibility": "shared"}},
	}
	var out []gomatrixserverlib.PDU
	for _, s := range steps {
		ev, err := b.add(admin, s.typ, s.stateKey, s.content)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// message builds a text message of the creator.
func (b *roomBuilder) message(body string) (gomatrixserverlib.PDU, error) {
	return b.add(b.admin, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": body})
}

// smallRoom is a room of the fake with only its creator in it.
func (f *fakeRemote) smallRoom(t testing.TB) *fakeRoom {
	t.Helper()
	b := newRoomBuilder(f, gomatrixserverlib.RoomVersionV12)
	evs, err := b.begin()
	if err != nil {
		t.Fatal(err)
	}
	raws := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		raws[i] = ev.JSON()
	}
	return f.host(t, b, raws, chainOf(evs))
}

// chainOf is the set of events evs name as auth events (the create
// event included: the library lists it for room version 12 too).
func chainOf(evs []gomatrixserverlib.PDU) map[string]bool {
	ids := map[string]bool{}
	for _, ev := range evs {
		for _, id := range ev.AuthEventIDs() {
			ids[id] = true
		}
	}
	return ids
}

// bigRoom is a room of the fake with members joined users of its own and
// others custom state events, generated once and kept in a file of the
// system's temporary directory (the key is the same each run).
func (f *fakeRemote) bigRoom(t testing.TB, members, others int) *fakeRoom {
	t.Helper()
	file := filepath.Join(os.TempDir(), fmt.Sprintf("chappe-fedbench-v1-%s-%d-%d.jsonl", f.name, members, others))
	raws, err := readLines(file)
	if err != nil {
		start := time.Now()
		if raws, err = f.generateBigRoom(members, others); err != nil {
			t.Fatal(err)
		}
		t.Logf("generated %d events in %s", len(raws), time.Since(start).Round(time.Millisecond))
		if err := writeLines(file, raws); err != nil {
			t.Logf("room not kept for the next run: %v", err)
		}
	}
	b := newRoomBuilder(f, gomatrixserverlib.RoomVersionV12)
	chain := map[string]bool{}
	for _, raw := range raws {
		ev, err := b.impl.NewEventFromTrustedJSON(raw, false)
		if err != nil {
			t.Fatalf("cached room %s: %v", file, err)
		}
		b.track(ev)
		for _, id := range ev.AuthEventIDs() {
			chain[id] = true
		}
	}
	return f.host(t, b, raws, chain)
}

func (f *fakeRemote) generateBigRoom(members, others int) ([]json.RawMessage, error) {
	b := newRoomBuilder(f, gomatrixserverlib.RoomVersionV12)
	first, err := b.begin()
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	for _, ev := range first {
		raws = append(raws, ev.JSON())
	}
	for i := range members {
		user := fmt.Sprintf("@u%06d:%s", i, f.name)
		ev, err := b.add(user, spec.MRoomMember, &user, map[string]any{"membership": spec.Join, "displayname": fmt.Sprintf("Agent %d", i)})
		if err != nil {
			return nil, err
		}
		raws = append(raws, ev.JSON())
	}
	for i := range others {
		key := fmt.Sprintf("k%06d", i)
		ev, err := b.add(b.admin, "fr.chappe.bench.fiche", &key, map[string]any{"service": fmt.Sprintf("bureau %d", i%97), "numero": i})
		if err != nil {
			return nil, err
		}
		raws = append(raws, ev.JSON())
	}
	return raws, nil
}

func readLines(file string) ([]json.RawMessage, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []json.RawMessage
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		out = append(out, json.RawMessage(line))
	}
	return out, nil
}

func writeLines(file string, raws []json.RawMessage) error {
	var buf bytes.Buffer
	for _, raw := range raws {
		buf.Write(raw)
		buf.WriteByte('\n')
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// selfSignedCert is a certificate for name that is its own authority,
// written (PEM) to a temporary file for Chappe to trust.
func selfSignedCert(t testing.TB, name string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}
