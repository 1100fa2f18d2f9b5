package userapi_test

import (
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/userapi"
)

func (e *env) createNonce(t *testing.T) string {
	t.Helper()
	resp, err := userapi.CreateNonce.Call(e.ctx, e.base.Bus, &userapi.CreateNonceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Nonce) < 16 {
		t.Fatalf("nonce %q is too short", resp.Nonce)
	}
	return resp.Nonce
}

func (e *env) consumeNonce(t *testing.T, nonce string) bool {
	t.Helper()
	resp, err := userapi.ConsumeNonce.Call(e.ctx, e.base.Bus, &userapi.ConsumeNonceRequest{Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Valid
}

func TestNonceSingleUse(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		a, b := e.createNonce(t), e.createNonce(t)
		if a == b {
			t.Fatal("two nonces are equal")
		}
		if !e.consumeNonce(t, a) {
			t.Error("fresh nonce refused")
		}
		if e.consumeNonce(t, a) {
			t.Error("nonce accepted twice")
		}
		if !e.consumeNonce(t, b) {
			t.Error("second nonce refused")
		}
		if e.consumeNonce(t, "never-issued") || e.consumeNonce(t, "") {
			t.Error("unknown nonce accepted")
		}
	})
}

func TestNonceExpiry(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		now := time.Now()
		userapi.SetClock(e.api, func() time.Time { return now })
		fresh, stale := e.createNonce(t), e.createNonce(t)

		now = now.Add(4*time.Minute + 59*time.Second)
		if !e.consumeNonce(t, fresh) {
			t.Error("nonce refused before 5 minutes")
		}
		now = now.Add(2 * time.Second)
		if e.consumeNonce(t, stale) {
			t.Error("nonce accepted after 5 minutes")
		}
	})
}
