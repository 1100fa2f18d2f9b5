package httputil

import (
	"net"
	"strings"
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
		who = clientIP(req, rt.trustedProxies)
	}
	ok, wait := rt.limiter.Allow(action, who)
	if ok {
		return nil
	}
	ms := (wait + time.Millisecond - 1) / time.Millisecond // round up: retrying early fails again
	return mxerr.LimitExceeded(int64(max(ms, 1)))
}

// SetTrustedProxies names the reverse proxies (CIDRs) whose
// X-Forwarded-For header is believed. Call it before serving.
func (rt *Router) SetTrustedProxies(nets []*net.IPNet) { rt.trustedProxies = nets }

// clientIP is the connection's peer address, or, when the peer is a
// trusted reverse proxy, the nearest untrusted address of X-Forwarded-For
// (the rightmost, as proxies append). An untrusted peer's header is
// ignored: any client could set it to dodge its limit.
func clientIP(req *Request, trusted []*net.IPNet) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	if !isTrusted(host, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(req.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !isTrusted(hop, trusted) {
			return hop
		}
		host = hop
	}
	return host
}

func isTrusted(addr string, trusted []*net.IPNet) bool {
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	for _, n := range trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
