package userapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// MaxPasswordBytes bounds passwords: nobody types more, and the limit keeps
// requests cheap to refuse.
const MaxPasswordBytes = 512

// bcryptMaxInput is the number of bytes bcrypt reads; the rest is ignored
// (Go's bcrypt refuses longer input outright).
const bcryptMaxInput = 72

// hashSlots bounds concurrent bcrypt runs to the number of CPUs, so a burst
// of logins queues instead of starving every other request of CPU.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// dummyHash is compared against when the account does not exist or has no
// password, so that a wrong user name costs as long as a wrong password and
// timing does not tell which accounts exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("chappe dummy password"), bcrypt.DefaultCost)
	if err != nil {
		panic(fmt.Sprintf("bcrypt dummy hash: %v", err)) // only on an invalid cost
	}
	return h
})

// checkPasswordLength refuses passwords longer than MaxPasswordBytes.
func checkPasswordLength(password string) error {
	if len(password) > MaxPasswordBytes {
		return mxerr.InvalidParam("password is longer than %d bytes", MaxPasswordBytes)
	}
	return nil
}

// bcryptInput is what bcrypt sees of a password. Passwords that fit in
// bcrypt's 72 bytes are used as they are (so hashes stay compatible with
// other bcrypt users); longer ones are replaced by the base64 of their
// SHA-256, so that every byte counts instead of the first 72 only. The rule
// depends on the password alone, so hashing and checking always agree.
func bcryptInput(password string) []byte {
	if len(password) <= bcryptMaxInput {
		return []byte(password)
	}
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.RawStdEncoding.EncodeToString(sum[:]))
}

// hashPassword returns the bcrypt hash to store.
func hashPassword(ctx context.Context, password string) (string, error) {
	if err := acquireHashSlot(ctx); err != nil {
		return "", err
	}
	defer releaseHashSlot()
	h, err := bcrypt.GenerateFromPassword(bcryptInput(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// checkPassword tells whether password matches hash. An empty hash (no
// account, or no password set) is checked against the dummy hash and
// always fails, in about the same time as a real check.
func checkPassword(ctx context.Context, hash, password string) (bool, error) {
	if err := acquireHashSlot(ctx); err != nil {
		return false, err
	}
	defer releaseHashSlot()
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), bcryptInput(password))
		return false, nil
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), bcryptInput(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("check password: %w", err)
	}
}

func acquireHashSlot(ctx context.Context) error {
	select {
	case hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a password hashing slot: %w", ctx.Err())
	}
}

func releaseHashSlot() { <-hashSlots }
