// Package signingkey reads and writes the server's ed25519 signing key in
// the one-line format Synapse and Dendrite also read:
// "ed25519 <key id> <unpadded base64 seed>".
package signingkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key is a signing key with its ID ("ed25519:abcd").
type Key struct {
	ID      string
	Private ed25519.PrivateKey
}

// Public returns the public half.
func (k Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Generate makes a new key with a random ID.
func Generate() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	var idBytes [4]byte
	if _, err := rand.Read(idBytes[:]); err != nil {
		return Key{}, err
	}
	id := "ed25519:a_" + base64.RawURLEncoding.EncodeToString(idBytes[:])[:4]
	return Key{ID: id, Private: priv}, nil
}

// Encode renders the key file's line.
func (k Key) Encode() string {
	return fmt.Sprintf("ed25519 %s %s\n", strings.TrimPrefix(k.ID, "ed25519:"),
		base64.RawStdEncoding.EncodeToString(k.Private.Seed()))
}

// Parse reads a key file's content.
func Parse(data string) (Key, error) {
	fields := strings.Fields(data)
	if len(fields) != 3 || fields[0] != "ed25519" {
		return Key{}, errors.New(`expected "ed25519 <key id> <base64 seed>"`)
	}
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(fields[2], "="))
	if err != nil || len(seed) != ed25519.SeedSize {
		return Key{}, errors.New("the seed is not 32 bytes of unpadded base64")
	}
	return Key{ID: "ed25519:" + fields[1], Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// LoadOrCreate reads the key at path, generating and writing one (mode
// 0600) when the file does not exist.
func LoadOrCreate(path string) (key Key, created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		key, err = Parse(string(data))
		if err != nil {
			return Key{}, false, fmt.Errorf("signing key %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, false, fmt.Errorf("read signing key: %w", err)
	}
	key, err = Generate()
	if err != nil {
		return Key{}, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return Key{}, false, err
	}
	if err := os.WriteFile(path, []byte(key.Encode()), 0o600); err != nil {
		return Key{}, false, fmt.Errorf("write signing key: %w", err)
	}
	return key, true, nil
}
