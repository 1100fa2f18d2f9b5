package appservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chappe-matrix/chappe/appservice/registration"
	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/mxid"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/roomserver"
)

// pingTimeout bounds POST /appservice/{id}/ping's call to the service.
const pingTimeout = 15 * time.Second

// AppService is the running component.
type AppService struct {
	b      *base.Base
	db     *sqlutil.DB
	log    *slog.Logger
	regs   []*registration.Registration
	byID   map[string]*registration.Registration
	client *http.Client
	subs   []bus.Subscription
}

// New reads the registrations, starts one pusher per service that has a
// URL, and registers the client-server routes.
func New(ctx context.Context, b *base.Base) (*AppService, error) {
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	a := &AppService{
		b:      b,
		db:     b.DB,
		log:    log.With("component", "appservice"),
		byID:   map[string]*registration.Registration{},
		client: &http.Client{},
	}
	if err := b.DB.Migrate(ctx, "appservice", migrations); err != nil {
		return nil, fmt.Errorf("appservice: %w", err)
	}
	if len(b.Config.AppServices) > 0 {
		regs, err := registration.Load(b.Config.AppServicePaths())
		if err != nil {
			return nil, fmt.Errorf("app_services: %w", err)
		}
		a.regs = regs
	}
	for _, r := range a.regs {
		a.byID[r.ID] = r
	}
	if err := roomserver.Output.Ensure(ctx, b.Bus); err != nil {
		return nil, err
	}
	for _, r := range a.regs {
		if r.BaseURL() == "" {
			continue
		}
		p, err := newPusher(ctx, a, r)
		if err != nil {
			a.Close()
			return nil, err
		}
		sub, err := roomserver.Output.ConsumeDurable(ctx, b.Bus, durableName(r.ID), p.handle)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("appservice %s: %w", r.ID, err)
		}
		a.subs = append(a.subs, sub)
	}
	a.routes(b.Router)
	return a, nil
}

// Close stops the pushers; a transaction being sent is handed back and
// sent again by the next start.
func (a *AppService) Close() {
	for _, s := range a.subs {
		s.Stop()
	}
	a.subs = nil
}

// durableName is the consumer of one service: NATS allows no dots,
// wildcards or spaces in it.
func durableName(id string) string {
	return "appservice-" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, id)
}

func (a *AppService) routes(r *httputil.Router) {
	r.Handle("POST /_matrix/client/v1/appservice/{appserviceId}/ping", httputil.RequireAuth, a.ping)
	r.Handle("PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}", httputil.RequireAuth, a.setNetworkVisibility)
}

// bearer is the access token of the request (the router already checked
// that it is valid).
func bearer(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("access_token")
}

// byToken is the service whose as_token the request carries.
func (a *AppService) byToken(r *http.Request) *registration.Registration {
	token := bearer(r)
	for _, reg := range a.regs {
		if reg.HasASToken(token) {
			return reg
		}
	}
	return nil
}

func (a *AppService) ping(req *httputil.Request) (any, error) {
	id := req.PathValue("appserviceId")
	reg := a.byID[id]
	if reg == nil || !reg.HasASToken(bearer(req.Request)) {
		return nil, mxerr.Forbidden("the access token is not the as_token of the application service %q", id)
	}
	var body struct {
		TransactionID string `json:"transaction_id,omitempty"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if reg.BaseURL() == "" {
		return nil, mxerr.New(http.StatusBadRequest, "M_URL_NOT_SET", "the application service %s has no URL configured", id)
	}
	payload, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(req.Context(), pingTimeout)
	defer cancel()
	start := time.Now()
	status, respBody, err := a.call(ctx, reg, http.MethodPost, "/_matrix/app/v1/ping", payload)
	duration := time.Since(start)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, mxerr.New(http.StatusGatewayTimeout, "M_CONNECTION_TIMEOUT", "connection to the application service timed out")
		}
		return nil, mxerr.New(http.StatusBadGateway, "M_CONNECTION_FAILED", "connection to the application service failed: %v", err)
	}
	if status < 200 || status > 299 {
		e := mxerr.New(http.StatusBadGateway, "M_BAD_STATUS", "ping returned status %d", status)
		e.Extra = map[string]any{"status": status, "body": string(respBody)}
		return nil, e
	}
	return map[string]int64{"duration_ms": duration.Milliseconds()}, nil
}

// call sends one request to the service with its hs_token and returns the
// status and (up to 64 KiB of) the body.
func (a *AppService) call(ctx context.Context, reg *registration.Registration, method, path string, body []byte) (int, []byte, error) {
	hreq, err := http.NewRequestWithContext(ctx, method, reg.BaseURL()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	hreq.Header.Set("Authorization", "Bearer "+reg.HSToken)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(hreq)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, data, nil
}

// setNetworkVisibility is PUT /directory/list/appservice/{networkId}/{roomId}:
// the room is published (or unpublished) in the directory, and the network
// it belongs to is remembered.
func (a *AppService) setNetworkVisibility(req *httputil.Request) (any, error) {
	reg := a.byToken(req.Request)
	if reg == nil {
		return nil, mxerr.Forbidden("only application services may use this endpoint")
	}
	networkID, roomID := req.PathValue("networkId"), req.PathValue("roomId")
	if networkID == "" || len(networkID) > 255 {
		return nil, mxerr.InvalidParam("bad network ID")
	}
	if !mxid.RoomID(roomID) {
		return nil, mxerr.InvalidParam("%q is not a room ID", roomID)
	}
	var body struct {
		Visibility string `json:"visibility"`
	}
	if err := httputil.DecodeJSON(req.Request, &body); err != nil {
		return nil, err
	}
	if body.Visibility != roomserver.VisibilityPublic && body.Visibility != roomserver.VisibilityPrivate {
		return nil, mxerr.InvalidParam("visibility must be public or private")
	}
	if _, err := roomserver.SetVisibility.Call(req.Context(), a.b.Bus, &roomserver.SetVisibilityRequest{
		UserID: req.Device.UserID, RoomID: roomID, Visibility: body.Visibility,
	}); err != nil {
		return nil, err
	}
	var err error
	if body.Visibility == roomserver.VisibilityPublic {
		_, err = a.db.ExecContext(req.Context(), `INSERT INTO as_room_networks (appservice_id, network_id, room_id) VALUES ($1, $2, $3)
			ON CONFLICT (appservice_id, network_id, room_id) DO NOTHING`, reg.ID, networkID, roomID)
	} else {
		_, err = a.db.ExecContext(req.Context(), `DELETE FROM as_room_networks WHERE appservice_id = $1 AND network_id = $2 AND room_id = $3`,
			reg.ID, networkID, roomID)
	}
	if err != nil {
		return nil, fmt.Errorf("store room network: %w", err)
	}
	return struct{}{}, nil
}

// txnPath is the transaction URL path for a transaction ID.
func txnPath(txnID string) string {
	return "/_matrix/app/v1/transactions/" + url.PathEscape(txnID)
}
