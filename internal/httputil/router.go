package httputil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/userapi"
)

// Auth says whether a route needs an access token.
type Auth int

const (
	NoAuth       Auth = iota
	RequireAuth       // M_MISSING_TOKEN / M_UNKNOWN_TOKEN without a valid token
	OptionalAuth      // Device is set when a valid token is given
)

// Request is what a handler receives.
type Request struct {
	*http.Request
	Device *userapi.Device // nil on NoAuth routes
	ID     string          // request ID, also in the logs
	Log    *slog.Logger
}

// Handler answers a request with a value to encode as JSON (status 200) or
// an error (a *mxerr.Error, or anything else for a 500).
type Handler func(req *Request) (any, error)

// RawHandler writes its own response (media, metrics).
type RawHandler func(w http.ResponseWriter, req *Request) error

// TokenResolver finds the device an access token belongs to (nil if none).
type TokenResolver func(ctx context.Context, token string) (*userapi.Device, error)

// Router is the client-facing HTTP mux of a process. Every component the
// process runs adds its routes; whatever matches none answers
// M_UNRECOGNIZED (404, or 405 for a known path with another method).
type Router struct {
	mux          *http.ServeMux
	log          *slog.Logger
	resolve      TokenResolver
	maxBodyBytes int64
	latency      *prometheus.HistogramVec
	limiter      Limiter // nil: no limits (see limit.go)
	// trustedProxies may set X-Forwarded-For (see limit.go).
	trustedProxies []*net.IPNet

	mu       sync.Mutex
	patterns []string
}

// NewRouter makes a router. resolve may be nil in processes that serve no
// authenticated route.
func NewRouter(log *slog.Logger, resolve TokenResolver, maxBodyBytes int64, reg prometheus.Registerer) *Router {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chappe_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "status"})
	if reg != nil {
		reg.MustRegister(latency)
	}
	return &Router{mux: http.NewServeMux(), log: log, resolve: resolve, maxBodyBytes: maxBodyBytes, latency: latency}
}

// Patterns lists the registered patterns ("GET /_matrix/...").
func (rt *Router) Patterns() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.patterns...)
}

// Handle registers a JSON handler for pattern ("METHOD /path/{var}").
func (rt *Router) Handle(pattern string, auth Auth, h Handler) {
	rt.handle(pattern, auth, "", jsonHandler(h))
}

func jsonHandler(h Handler) RawHandler {
	return func(w http.ResponseWriter, req *Request) error {
		resp, err := h(req)
		if err != nil {
			return err
		}
		WriteJSON(w, http.StatusOK, resp)
		return nil
	}
}

// HandleRaw registers a handler that writes its own response.
func (rt *Router) HandleRaw(pattern string, auth Auth, h RawHandler) {
	rt.handle(pattern, auth, "", h)
}

// handle registers h; a non-empty action puts the route under that
// action's rate limit.
func (rt *Router) handle(pattern string, auth Auth, action string, h RawHandler) {
	rt.handleBody(pattern, auth, action, rt.maxBodyBytes, h)
}

// handleBody is handle with the route's own body limit (bodylimit.go).
func (rt *Router) handleBody(pattern string, auth Auth, action string, maxBody int64, h RawHandler) {
	rt.mu.Lock()
	rt.patterns = append(rt.patterns, pattern)
	rt.mu.Unlock()
	route := pattern
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rt.serve(w, r, route, auth, action, maxBody, h)
	})
}

// ServeHTTP dispatches, answering CORS pre-flights and unknown routes.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setCORS(w.Header())
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		status := http.StatusNotFound
		if rt.pathKnown(r) {
			status = http.StatusMethodNotAllowed
		}
		WriteJSON(w, status, mxerr.Unrecognized(status, "unrecognized request: %s %s", r.Method, r.URL.Path).Body())
		return
	}
	rt.mux.ServeHTTP(w, r)
}

func (rt *Router) pathKnown(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := rt.mux.Handler(probe); p != "" {
			return true
		}
	}
	return false
}

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rt *Router) serve(w http.ResponseWriter, r *http.Request, route string, auth Auth, action string, maxBody int64, h RawHandler) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	id := newRequestID()
	req := &Request{Request: r, ID: id, Log: rt.log.With("req", id)}
	defer func() {
		if p := recover(); p != nil {
			req.Log.Error("handler panicked", "route", route, "panic", p, "stack", string(debug.Stack()))
			if sw.status == 0 {
				WriteJSON(sw, http.StatusInternalServerError, mxerr.Unknown("internal error").Body())
			}
		}
		rt.latency.WithLabelValues(route, fmt.Sprint(sw.status)).Observe(time.Since(start).Seconds())
	}()
	if r.ContentLength > maxBody {
		WriteError(sw, req.Log, mxerr.TooLarge("request body is over %d bytes", maxBody))
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, maxBody)
	if auth != NoAuth {
		token := accessToken(r)
		switch {
		case token == "" && auth == RequireAuth:
			WriteError(sw, req.Log, mxerr.MissingToken())
			return
		case token != "":
			dev, err := rt.resolve(r.Context(), token)
			if err != nil {
				WriteError(sw, req.Log, err)
				return
			}
			if dev == nil {
				WriteError(sw, req.Log, mxerr.UnknownToken(false))
				return
			}
			req.Device = dev
			req.Log = req.Log.With("user", dev.UserID, "device", dev.DeviceID)
			// A locked account keeps its sessions but may only log out.
			if dev.Locked && !strings.HasSuffix(route, "/logout") && !strings.HasSuffix(route, "/logout/all") {
				WriteError(sw, req.Log, userapi.ErrUserLocked())
				return
			}
		}
	}
	// After authentication, so a logged-in user is limited as themself
	// and not as everyone behind their NAT.
	if err := rt.checkLimit(req, action); err != nil {
		WriteError(sw, req.Log, err)
		return
	}
	if err := h(sw, req); err != nil {
		WriteError(sw, req.Log, err)
	}
}

// accessToken reads the Authorization header or the deprecated query
// parameter that some clients and bots still use.
func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("access_token")
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
