package clientapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// turnServer hands out TURN credentials. With a shared secret they follow
// the TURN REST API scheme coturn checks (use-auth-secret): the username
// is "expiry:user_id", the password base64(HMAC-SHA1(secret, username)),
// so coturn needs no user list. With no TURN configured the answer is {},
// as Synapse's: clients read it as "no TURN server" and call peer to peer.
func (c *ClientAPI) turnServer(req *httputil.Request) (any, error) {
	t := c.cfg.TURN
	if len(t.URIs) == 0 {
		return struct{}{}, nil
	}
	ttl := t.UserLifetime
	resp := map[string]any{"uris": t.URIs, "ttl": int64(ttl / time.Second)}
	switch {
	case t.SharedSecret != "":
		username := strconv.FormatInt(time.Now().Add(ttl).Unix(), 10) + ":" + req.Device.UserID
		mac := hmac.New(sha1.New, []byte(t.SharedSecret))
		mac.Write([]byte(username))
		resp["username"] = username
		resp["password"] = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	case t.Username != "" || t.Password != "":
		resp["username"], resp["password"] = t.Username, t.Password
	default:
		// URIs without credentials: STUN-only or an open TURN server.
		resp["username"], resp["password"] = "", ""
	}
	return resp, nil
}

// wellKnownSupport serves the configured support contacts; 404 when none
// are, as the spec asks of servers that publish nothing.
func (c *ClientAPI) wellKnownSupport(*httputil.Request) (any, error) {
	s := c.cfg.Support
	if len(s.Contacts) == 0 && s.SupportPage == "" {
		return nil, mxerr.NotFound("no support information is published")
	}
	type contact struct {
		MatrixID     string `json:"matrix_id,omitempty"`
		EmailAddress string `json:"email_address,omitempty"`
		Role         string `json:"role"`
	}
	out := struct {
		Contacts    []contact `json:"contacts,omitempty"`
		SupportPage string    `json:"support_page,omitempty"`
	}{SupportPage: s.SupportPage}
	for _, ct := range s.Contacts {
		out.Contacts = append(out.Contacts, contact{MatrixID: ct.MatrixID, EmailAddress: ct.EmailAddress, Role: ct.Role})
	}
	return out, nil
}
