package httputil

import (
	"net"
	"time"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Limiter decides whether who may perform action now (internal/ratelimit
// implements it; an interface keeps this package free of its policy).
type Limiter interface {
	Allow(action, who string) (ok bool, retryAfter time.Duration)
}

// SetLimiter turns rate limiting on for the routes registered with an
// action. Call it before serving.
func (rt *Router) SetLimiter(l Limiter) { rt.limiter = l }

// HandleLimited is Handle with the route counted against action's rate
// limit (config rate_limits.actions).
func (rt *Router) HandleLimited(pattern string, auth Auth, action string, h Handler) {
	rt.handle(pattern, auth, action, jsonHandler(h))
}

// checkLimit answers M_LIMIT_EXCEEDED when the caller is over action's
// limit. Authenticated callers are counted per user, others per IP
// address; server admins are never limited (bulk provisioning scripts).
func (rt *Router) checkLimit(req *Request, action string) error {
	if action == "" || rt.limiter == nil {
		return nil
	}
	who := ""
	switch {
	case req.Device != nil && req.Device.IsAdmin:
		return nil
	case req.Device != nil:
		who = req.Device.UserID
	default:
		who = clientIP(req)
	}
	ok, wait := rt.limiter.Allow(action, who)
	if ok {
		return nil
	}
	ms := (wait + time.Millisecond - 1) / time.Millisecond // round up: retrying early fails again
	return mxerr.LimitExceeded(int64(max(ms, 1)))
}

// clientIP is the connection's peer address. X-Forwarded-For is not
// trusted: any client could set it to dodge its limit.
func clientIP(req *Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}
