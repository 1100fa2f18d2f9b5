//go:build goolm

package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"

	"github.com/chappe-matrix/chappe/internal/testserver"
)

// Cross-signing with mautrix's helpers: the first upload needs no
// user-interactive auth, a replacement does; the device signed by the
// self-signing key and another user's master key signed by the
// user-signing key show their signatures in /keys/query.
func TestE2EECrossSigning(t *testing.T) {
	srv := testserver.New(t)
	alice := newCryptoClient(t, srv.RegisterUser(t, "alice"))
	bob := newCryptoClient(t, srv.RegisterUser(t, "bob"))
	encryptedRoom(t, alice, bob)
	ctx := ctxT(t)

	uiaCalled := false
	noUIA := func(*mautrix.RespUserInteractive) any { uiaCalled = true; return nil }
	aliceKeys := must[*crypto.CrossSigningKeysCache](t)(alice.mach.GenerateCrossSigningKeys())
	if err := alice.mach.PublishCrossSigningKeys(ctx, aliceKeys, noUIA); err != nil || uiaCalled {
		t.Fatalf("first cross-signing upload: err %v, uia asked %v", err, uiaCalled)
	}
	alice.mach.CrossSigningKeys = aliceKeys
	if err := alice.mach.SignOwnDevice(ctx, alice.mach.OwnIdentity()); err != nil {
		t.Fatalf("sign own device: %v", err)
	}
	if err := alice.mach.SignOwnMasterKey(ctx); err != nil {
		t.Fatalf("sign own master key: %v", err)
	}

	// Replacing the keys asks for the password.
	other := must[*crypto.CrossSigningKeysCache](t)(alice.mach.GenerateCrossSigningKeys())
	if err := alice.mach.PublishCrossSigningKeys(ctx, other, noUIA); err == nil || !uiaCalled {
		t.Fatalf("replacing cross-signing keys without auth: err %v, uia asked %v", err, uiaCalled)
	}

	q := must[*mautrix.RespQueryKeys](t)(bob.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.cli.UserID: {}}}))
	ssk := aliceKeys.SelfSigningKey.PublicKey()
	dev := q.DeviceKeys[alice.cli.UserID][alice.cli.DeviceID]
	if _, ok := dev.Signatures[alice.cli.UserID][id.NewKeyID(id.KeyAlgorithmEd25519, ssk.String())]; !ok {
		t.Fatalf("alice's device lacks the self-signing signature: %+v", dev.Signatures)
	}
	if _, ok := q.MasterKeys[alice.cli.UserID]; !ok {
		t.Fatal("no master key for alice")
	}
	if _, ok := q.SelfSigningKeys[alice.cli.UserID]; !ok {
		t.Fatal("no self-signing key for alice")
	}
	if _, ok := q.UserSigningKeys[alice.cli.UserID]; ok {
		t.Fatal("alice's user-signing key was shown to bob")
	}

	// Bob verifies alice.
	bobKeys := must[*crypto.CrossSigningKeysCache](t)(bob.mach.GenerateCrossSigningKeys())
	if err := bob.mach.PublishCrossSigningKeys(ctx, bobKeys, noUIA); err != nil {
		t.Fatal(err)
	}
	bob.mach.CrossSigningKeys = bobKeys
	master := aliceKeys.MasterKey.PublicKey()
	if err := bob.mach.SignUser(ctx, alice.cli.UserID, master); err != nil {
		t.Fatalf("bob signs alice: %v", err)
	}
	q = must[*mautrix.RespQueryKeys](t)(bob.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.cli.UserID: {}}}))
	usk := id.NewKeyID(id.KeyAlgorithmEd25519, bobKeys.UserSigningKey.PublicKey().String())
	if _, ok := q.MasterKeys[alice.cli.UserID].Signatures[bob.cli.UserID][usk]; !ok {
		t.Fatalf("alice's master key lacks bob's signature: %+v", q.MasterKeys[alice.cli.UserID].Signatures)
	}
	if _, ok := q.UserSigningKeys[alice.cli.UserID]; ok {
		t.Fatal("user-signing key leaked")
	}
}
