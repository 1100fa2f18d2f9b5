package clientapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// User-interactive authentication (spec: "User-interactive authentication
// API"). Session state (which stages are done, what the session
// authorises) lives in the userapi's database, reached over the bus, so a
// client may send each step to a different clientapi process. A session is
// bound to one user and one operation (its route), and ends when it has
// authorised that operation once.

const (
	stagePassword = "m.login.password"
	stageDummy    = "m.login.dummy"
	stageRegToken = "m.login.registration_token"
)

// uiaAuth is the request's "auth" object, with the fields of every stage
// Chappe offers.
type uiaAuth struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Password   string `json:"password"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User  string `json:"user"`  // deprecated form of identifier.user
	Token string `json:"token"` // m.login.registration_token
}

// uiaSpec is what an operation asks for.
type uiaSpec struct {
	route  string // what the session authorises, e.g. "POST /account/password"
	userID string // the authenticated user; "" while registering
	flows  [][]string
}

// passwordFlows is the one flow of operations on an existing account.
var passwordFlows = [][]string{{stagePassword}}

// authenticate runs one step of user-interactive auth. It returns the
// finished session once auth completes a flow; until then the 401 that
// tells the client what to do next.
func (c *ClientAPI) authenticate(req *httputil.Request, auth *uiaAuth, spec uiaSpec) (*userapi.UIASession, error) {
	ctx := req.Context()
	if auth == nil || (auth.Session == "" && auth.Type == "") {
		s, err := userapi.CreateUIASession.Call(ctx, c.bus, &userapi.CreateUIASessionRequest{UserID: spec.userID, Route: spec.route})
		if err != nil {
			return nil, err
		}
		return nil, spec.challenge(s.Session, nil, "", "")
	}
	var session *userapi.UIASession
	if auth.Session == "" {
		// A client may attempt a stage straight away, without a session.
		s, err := userapi.CreateUIASession.Call(ctx, c.bus, &userapi.CreateUIASessionRequest{UserID: spec.userID, Route: spec.route})
		if err != nil {
			return nil, err
		}
		session = &userapi.UIASession{Found: true, Session: s.Session, UserID: spec.userID, Route: spec.route}
	} else {
		s, err := userapi.QueryUIASession.Call(ctx, c.bus, &userapi.QueryUIASessionRequest{Session: auth.Session})
		if err != nil {
			return nil, err
		}
		if !s.Found {
			return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "unknown or expired session")
		}
		if s.UserID != spec.userID || s.Route != spec.route {
			return nil, mxerr.Forbidden("the session was started for another operation")
		}
		session = s
	}
	if auth.Type != "" {
		var err error
		if session, err = c.passStage(req, auth, spec, session); err != nil {
			return nil, err
		}
	}
	if !spec.complete(session.Completed) {
		return nil, spec.challenge(session.Session, session.Completed, "", "")
	}
	done, err := userapi.EndUIASession.Call(ctx, c.bus, &userapi.EndUIASessionRequest{Session: session.Session})
	if err != nil {
		return nil, err
	}
	if !done.Found {
		// A concurrent request used the session first.
		return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "unknown or expired session")
	}
	return done, nil
}

// passStage checks the stage the client attempts and records it.
func (c *ClientAPI) passStage(req *httputil.Request, auth *uiaAuth, spec uiaSpec, s *userapi.UIASession) (*userapi.UIASession, error) {
	ctx := req.Context()
	if !spec.offers(auth.Type) {
		return nil, spec.challenge(s.Session, s.Completed, "M_UNRECOGNIZED", "stage "+truncate(auth.Type, 64)+" is not offered")
	}
	complete := &userapi.CompleteUIAStageRequest{Session: s.Session, Stage: auth.Type}
	switch auth.Type {
	case stagePassword:
		if err := c.checkUIAUser(auth, spec.userID); err != nil {
			return nil, err
		}
		ok, err := userapi.CheckPassword.Call(ctx, c.bus, &userapi.CheckPasswordRequest{UserID: spec.userID, Password: auth.Password})
		if err != nil {
			return nil, err
		}
		if !ok.Valid {
			return nil, spec.challenge(s.Session, s.Completed, "M_FORBIDDEN", "invalid password")
		}
	case stageRegToken:
		if auth.Token == "" {
			return nil, mxerr.MissingParam("auth.token is required")
		}
		complete.RegToken = auth.Token
	case stageDummy:
	}
	done, err := userapi.CompleteUIAStage.Call(ctx, c.bus, complete)
	if err != nil {
		return nil, err
	}
	if !done.Found {
		return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "unknown or expired session")
	}
	if done.Refused {
		return nil, spec.challenge(s.Session, s.Completed, "M_FORBIDDEN", "invalid registration token")
	}
	return done, nil
}

// checkUIAUser refuses a password stage that names another user than the
// one authenticated: the spec binds the session to the requester.
func (c *ClientAPI) checkUIAUser(auth *uiaAuth, userID string) error {
	user := auth.User
	if auth.Identifier.Type != "" {
		if auth.Identifier.Type != "m.id.user" {
			return mxerr.New(http.StatusBadRequest, "M_UNKNOWN", "unsupported identifier type")
		}
		user = auth.Identifier.User
	}
	user = strings.TrimSpace(user)
	if user == "" || user == userID || "@"+strings.ToLower(user)+":"+c.cfg.ServerName == userID {
		return nil
	}
	return mxerr.Forbidden("the auth names another user than the one logged in")
}

func (s uiaSpec) offers(stage string) bool {
	for _, f := range s.flows {
		if slices.Contains(f, stage) {
			return true
		}
	}
	return false
}

func (s uiaSpec) complete(done []string) bool {
	for _, f := range s.flows {
		all := true
		for _, stage := range f {
			if !slices.Contains(done, stage) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// challenge is the 401 of the spec: flows, params, session, the stages
// completed, and an errcode when the last attempt failed.
func (s uiaSpec) challenge(session string, completed []string, code, message string) *mxerr.Error {
	flows := make([]map[string]any, len(s.flows))
	for i, f := range s.flows {
		flows[i] = map[string]any{"stages": f}
	}
	e := &mxerr.Error{Status: http.StatusUnauthorized, Code: code, Message: message, Extra: map[string]any{
		"flows":   flows,
		"params":  map[string]any{},
		"session": session,
	}}
	if len(completed) > 0 {
		e.Extra["completed"] = completed
	}
	return e
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
