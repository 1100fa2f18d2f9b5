package userapi_test

import (
	"testing"
	"time"

	"github.com/chappe-matrix/chappe/userapi"
)

// A registration token's use reserved by a UIA session that never
// registers is given back when the session expires.
func TestUIASessionExpiryReleasesToken(t *testing.T) {
	run(t, func(t *testing.T, e *env) {
		now := time.Now()
		userapi.SetClock(e.api, func() time.Time { return now })
		b := e.base.Bus
		one := int64(1)
		if _, err := userapi.CreateRegistrationToken.Call(e.ctx, b, &userapi.CreateRegistrationTokenRequest{Token: "t1", UsesAllowed: &one}); err != nil {
			t.Fatal(err)
		}
		stage := func() *userapi.UIASession {
			s, err := userapi.CreateUIASession.Call(e.ctx, b, &userapi.CreateUIASessionRequest{Route: "POST /register"})
			if err != nil {
				t.Fatal(err)
			}
			done, err := userapi.CompleteUIAStage.Call(e.ctx, b, &userapi.CompleteUIAStageRequest{
				Session: s.Session, Stage: "m.login.registration_token", RegToken: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			return done
		}
		if s := stage(); s.Refused || s.RegToken != "t1" || len(s.Completed) != 1 {
			t.Fatalf("first session = %+v", s)
		}
		// The only use is reserved: a second session is refused.
		if s := stage(); !s.Refused {
			t.Fatalf("second session = %+v", s)
		}
		now = now.Add(time.Hour)
		if s := stage(); s.Refused {
			t.Fatalf("after expiry = %+v", s)
		}
		tok, err := userapi.QueryRegistrationToken.Call(e.ctx, b, &userapi.QueryRegistrationTokenRequest{Token: "t1"})
		if err != nil || tok.Pending != 1 || tok.Completed != 0 {
			t.Fatalf("token = %+v, %v", tok, err)
		}
	})
}
