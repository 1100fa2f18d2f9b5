//go:build goolm

package tests

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Server-side key backup with real keys: Alice's client backs up the room
// keys of messages it received, a device of hers logged in later cannot
// read those messages, restores the keys from the backup with the recovery
// key, and then reads them. mautrix's OlmMachine restores backups
// (DownloadAndStoreLatestKeyBackup) but does not upload to them, so the
// upload is written here with its crypto/backup primitives, as a client
// does: each session exported and encrypted to the backup's public key.
func TestE2EEBackupRestore(t *testing.T) {
	_, alice, bob, room, members := aliceAndBob(t)
	aliceCli := alice.cli
	ctx := ctxT(t)
	secrets := []string{"first secret", "second secret"}
	for _, s := range secrets {
		bob.send(t, room, members, s)
		alice.decrypted(t, room, s)
	}

	recovery := must[*backup.MegolmBackupKey](t)(backup.NewMegolmBackupKey())
	version := must[*mautrix.RespRoomKeysVersionCreate](t)(alice.cli.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
		AuthData:  backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(recovery.PublicKey().Bytes()))},
	})).Version
	sessions, err := alice.mach.CryptoStore.GetAllGroupSessions(ctx).AsList()
	if err != nil || len(sessions) == 0 {
		t.Fatalf("alice's room keys: %d, %v", len(sessions), err)
	}
	upload := &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{}}
	for _, s := range sessions {
		first := s.Internal.FirstKnownIndex()
		exported, err := s.Internal.Export(first)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := backup.EncryptSessionData(recovery, backup.MegolmSessionData{
			Algorithm:          id.AlgorithmMegolmV1,
			ForwardingKeyChain: []string{},
			SenderClaimedKeys:  backup.SenderClaimedKeys{Ed25519: s.SigningKey},
			SenderKey:          s.SenderKey,
			SessionKey:         string(exported),
		})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(enc)
		if upload.Rooms[s.RoomID].Sessions == nil {
			upload.Rooms[s.RoomID] = mautrix.ReqRoomKeyBackup{Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{}}
		}
		upload.Rooms[s.RoomID].Sessions[s.ID()] = mautrix.ReqKeyBackupData{FirstMessageIndex: int(first), SessionData: data}
	}
	put := must[*mautrix.RespRoomKeysUpdate](t)(alice.cli.PutKeysInBackup(ctx, version, upload))
	if put.Count != len(sessions) {
		t.Fatalf("backup holds %d keys, %d uploaded", put.Count, len(sessions))
	}

	// A device logged in afterwards reads the history but cannot decrypt it.
	alice2 := newCryptoClient(t, loginAgain(t, aliceCli, "password-alice"))
	history := roomHistory(t, alice2.cli, room)
	if len(history) < len(secrets) {
		t.Fatalf("%d encrypted events in the history", len(history))
	}
	for _, evt := range history {
		if _, err := alice2.mach.DecryptMegolmEvent(ctx, evt); err == nil {
			t.Fatal("the new device decrypts without the backup")
		}
	}

	// With the recovery key, it restores the backup and reads the history.
	restored := must[id.KeyBackupVersion](t)(alice2.mach.DownloadAndStoreLatestKeyBackup(ctx, recovery))
	if restored != version {
		t.Fatalf("restored version %s, want %s", restored, version)
	}
	read := map[string]bool{}
	for _, evt := range history {
		dec, err := alice2.mach.DecryptMegolmEvent(ctx, evt)
		if err != nil {
			t.Fatalf("decrypt %s after the restore: %v", evt.ID, err)
		}
		read[dec.Content.AsMessage().Body] = true
	}
	for _, s := range secrets {
		if !read[s] {
			t.Fatalf("%q not read after the restore (read %v)", s, read)
		}
	}
}

// roomHistory is the room's encrypted events from /messages, parsed.
func roomHistory(t *testing.T, cli *mautrix.Client, roomID id.RoomID) []*event.Event {
	t.Helper()
	resp := must[*mautrix.RespMessages](t)(cli.Messages(ctxT(t), roomID, "", "", mautrix.DirectionBackward, nil, 100))
	var out []*event.Event
	for _, evt := range resp.Chunk {
		if evt.Type != event.EventEncrypted {
			continue
		}
		if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			t.Fatalf("parse %s: %v", evt.ID, err)
		}
		evt.RoomID = roomID
		out = append(out, evt)
	}
	return out
}
