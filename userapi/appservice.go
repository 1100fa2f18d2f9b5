package userapi

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/chappe-matrix/chappe/appservice/registration"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Application services (app_services in the configuration) authenticate
// with their as_token, acting as their sender user or, with the user_id
// query parameter, as any user of their namespaces (identity assertion);
// device_id selects one of that user's devices (MSC3202). They register
// their users with the m.login.application_service type, and exclusive
// user namespaces are closed to everyone else.
var (
	// QueryAppServiceToken resolves a token that may be an as_token, with
	// the masquerading parameters of the request. A token that is no
	// as_token is looked up as an ordinary access token.
	QueryAppServiceToken = bus.Endpoint[QueryAppServiceTokenRequest, QueryAccessTokenResponse]{Subject: "userapi.query_appservice_token"}
	// RegisterAppServiceUser creates an account in an application
	// service's user namespace (M_EXCLUSIVE outside it).
	RegisterAppServiceUser = bus.Endpoint[RegisterAppServiceUserRequest, LoginResponse]{Subject: "userapi.register_appservice_user"}
	// CheckUserNamespace answers M_EXCLUSIVE when a localpart belongs to
	// an exclusive namespace of an application service, so ordinary
	// registration may not take it.
	CheckUserNamespace = bus.Endpoint[CheckUserNamespaceRequest, CheckUserNamespaceResponse]{Subject: "userapi.check_user_namespace"}
)

// LoginTypeAppService is the /register and /login type of application services.
const LoginTypeAppService = "m.login.application_service"

type QueryAppServiceTokenRequest struct {
	AccessToken string `json:"access_token"`
	UserID      string `json:"user_id,omitempty"`   // the user_id query parameter
	DeviceID    string `json:"device_id,omitempty"` // the device_id query parameter
}

type RegisterAppServiceUserRequest struct {
	ASToken            string `json:"as_token"`
	Localpart          string `json:"localpart"`
	DeviceID           string `json:"device_id,omitempty"`
	InitialDisplayName string `json:"initial_device_display_name,omitempty"`
	InhibitLogin       bool   `json:"inhibit_login,omitempty"`
	RefreshToken       bool   `json:"refresh_token,omitempty"`
}

type CheckUserNamespaceRequest struct {
	Localpart string `json:"localpart"`
}

type CheckUserNamespaceResponse struct{}

// ErrExclusive is M_EXCLUSIVE.
func ErrExclusive(format string, args ...any) *mxerr.Error {
	return mxerr.New(http.StatusBadRequest, "M_EXCLUSIVE", format, args...)
}

// appServices are the registrations the userapi knows, by as_token hash.
type appServices struct {
	regs    []*registration.Registration
	byToken map[[32]byte]*registration.Registration
}

// initAppServices loads the registrations and makes sure each sender user
// has an account (the spec's sender_localpart user exists implicitly).
func (u *UserAPI) initAppServices(ctx context.Context, paths []string) error {
	u.appServices = &appServices{byToken: map[[32]byte]*registration.Registration{}}
	if len(paths) == 0 {
		return nil
	}
	regs, err := registration.Load(paths)
	if err != nil {
		return fmt.Errorf("app_services: %w", err)
	}
	u.appServices.regs = regs
	for _, r := range regs {
		u.appServices.byToken[sha256.Sum256([]byte(r.ASToken))] = r
		a, err := prepareAccount(ctx, u.db, u.serverName, r.SenderLocalpart, "", "", false)
		if me, ok := mxerr.As(err); ok && me.Code == "M_USER_IN_USE" {
			continue
		}
		if err != nil {
			return fmt.Errorf("app_services: %s: sender_localpart: %w", r.File, err)
		}
		err = u.db.WithTx(ctx, func(tx *sqlutil.Tx) error { return insertAccount(ctx, tx, a, u.now().UnixMilli()) })
		if me, ok := mxerr.As(err); ok && me.Code == "M_USER_IN_USE" {
			continue // another process created it meanwhile
		}
		if err != nil {
			return fmt.Errorf("app_services: create %s: %w", a.userID, err)
		}
	}
	return nil
}

func (u *UserAPI) appServiceByToken(token string) *registration.Registration {
	if u.appServices == nil || len(u.appServices.regs) == 0 || !plausibleToken(token) {
		return nil
	}
	return u.appServices.byToken[sha256.Sum256([]byte(token))]
}

func (u *UserAPI) serveAppServices() error {
	return errors.Join(
		QueryAppServiceToken.Serve(u.bus, u.queryAppServiceToken),
		RegisterAppServiceUser.Serve(u.bus, u.registerAppServiceUser),
		CheckUserNamespace.Serve(u.bus, u.checkUserNamespace),
	)
}

func (u *UserAPI) queryAppServiceToken(ctx context.Context, req *QueryAppServiceTokenRequest) (*QueryAccessTokenResponse, error) {
	r := u.appServiceByToken(req.AccessToken)
	if r == nil {
		return u.lookupToken(ctx, req.AccessToken)
	}
	dev, err := u.appServiceDevice(ctx, r, req.UserID, req.DeviceID)
	if err != nil {
		return nil, err
	}
	return &QueryAccessTokenResponse{Device: dev}, nil
}

// appServiceDevice is the identity an application service acts with: its
// sender, or userID when it is in its namespaces and registered.
func (u *UserAPI) appServiceDevice(ctx context.Context, r *registration.Registration, userID, deviceID string) (*Device, error) {
	if userID == "" {
		userID = r.SenderUserID(u.serverName)
	} else if !r.OwnsUser(userID, u.serverName) {
		return nil, mxerr.Forbidden("the application service %s cannot act as %s, which is outside its namespaces", r.ID, userID)
	}
	dev := Device{UserID: userID}
	var deactivated bool
	err := u.db.QueryRowContext(ctx, `SELECT is_admin, is_suspended, is_locked, is_deactivated FROM ua_accounts WHERE user_id = $1`, userID).
		Scan(&dev.IsAdmin, &dev.Suspended, &dev.Locked, &deactivated)
	if errors.Is(err, sql.ErrNoRows) || deactivated {
		return nil, mxerr.Forbidden("the application service %s has not registered %s", r.ID, userID)
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", userID, err)
	}
	if deviceID != "" {
		var name string
		err := u.db.QueryRowContext(ctx, `SELECT display_name FROM ua_devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, mxerr.New(http.StatusBadRequest, "M_UNKNOWN_DEVICE", "%s has no device %s", userID, deviceID)
		}
		if err != nil {
			return nil, fmt.Errorf("look up device %s of %s: %w", deviceID, userID, err)
		}
		dev.DeviceID, dev.DisplayName = deviceID, name
	}
	return &dev, nil
}

func (u *UserAPI) registerAppServiceUser(ctx context.Context, req *RegisterAppServiceUserRequest) (*LoginResponse, error) {
	if req.ASToken == "" {
		return nil, mxerr.MissingToken()
	}
	r := u.appServiceByToken(req.ASToken)
	if r == nil {
		return nil, mxerr.UnknownToken(false)
	}
	if req.Localpart == "" {
		return nil, mxerr.MissingParam("username is required")
	}
	userID, err := ValidateLocalpart(req.Localpart, u.serverName)
	if err != nil {
		return nil, err
	}
	if !r.MatchesUser(userID) {
		return nil, ErrExclusive("%s is not in the namespaces of the application service %s", userID, r.ID)
	}
	return u.register(ctx, &RegisterRequest{
		Localpart:          req.Localpart,
		DeviceID:           req.DeviceID,
		InitialDisplayName: req.InitialDisplayName,
		InhibitLogin:       req.InhibitLogin,
		RefreshToken:       req.RefreshToken,
	})
}

func (u *UserAPI) checkUserNamespace(_ context.Context, req *CheckUserNamespaceRequest) (*CheckUserNamespaceResponse, error) {
	if u.appServices == nil {
		return &CheckUserNamespaceResponse{}, nil
	}
	userID := u.userID(req.Localpart)
	for _, r := range u.appServices.regs {
		if r.ExclusiveUser(userID) || userID == r.SenderUserID(u.serverName) {
			return nil, ErrExclusive("%s is reserved by the application service %s", userID, r.ID)
		}
	}
	return &CheckUserNamespaceResponse{}, nil
}

// resolveAppService is the token check of a process that runs the
// userapi: handled is false when token is no as_token.
func (u *UserAPI) resolveAppService(ctx context.Context, token string) (dev *Device, handled bool, err error) {
	r := u.appServiceByToken(token)
	if r == nil {
		return nil, false, nil
	}
	p := appServiceParamsFrom(ctx)
	dev, err = u.appServiceDevice(ctx, r, p.userID, p.deviceID)
	return dev, true, err
}

// remoteAppServiceToken is the resolver's path for tokens that are not
// ours (no cht_ prefix): as_tokens, answered without caching since the
// answer depends on the request's user_id.
func remoteAppServiceToken(ctx context.Context, b *bus.Bus, token string) (*QueryAccessTokenResponse, bool, error) {
	if strings.HasPrefix(token, tokenPrefix) {
		return nil, false, nil
	}
	p := appServiceParamsFrom(ctx)
	resp, err := QueryAppServiceToken.Call(ctx, b, &QueryAppServiceTokenRequest{AccessToken: token, UserID: p.userID, DeviceID: p.deviceID})
	return resp, true, err
}

type appServiceParamsKey struct{}

type appServiceParams struct{ userID, deviceID string }

func appServiceParamsFrom(ctx context.Context) appServiceParams {
	p, _ := ctx.Value(appServiceParamsKey{}).(appServiceParams)
	return p
}

// WithAppServiceParams hands the user_id and device_id query parameters
// to the token resolver (through the request's context), for application
// services' identity assertion. Ordinary access tokens ignore them.
func WithAppServiceParams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			q := r.URL.Query()
			if p := (appServiceParams{userID: q.Get("user_id"), deviceID: q.Get("device_id")}); p != (appServiceParams{}) {
				r = r.WithContext(context.WithValue(r.Context(), appServiceParamsKey{}, p))
			}
		}
		next.ServeHTTP(w, r)
	})
}
