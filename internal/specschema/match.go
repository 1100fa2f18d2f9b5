package specschema

import (
	"regexp"
	"strings"
)

// Match says how a route serves a spec operation.
type Match int

const (
	NoMatch Match = iota
	// Partial: the route fixes a segment the spec leaves variable, e.g.
	// GET /profile/{userId}/displayname for /profile/{userId}/{keyName}.
	Partial
	Exact
)

// Routes answers which spec operations a server's route table serves. A
// route is a Go ServeMux pattern ("GET /_matrix/client/v3/rooms/{roomId}/
// state/{eventType}/{stateKey...}"); a spec path names its parameters
// differently ("{stateKey}"), so paths are compared segment by segment
// with every parameter reduced to "{}".
type Routes struct {
	routes []route
}

type route struct {
	pattern string
	method  string // "" for any
	segs    []string
}

var (
	paramRe = regexp.MustCompile(`\{[^}]*\}`)
	exactRe = regexp.MustCompile(`\{\$\}$`) // ServeMux's "end of path" marker
)

// NormalisePath reduces path parameters to "{}" and drops ServeMux's
// "{$}", so "/rooms/{roomId}/state/{stateKey...}" and the spec's
// "/rooms/{roomId}/state/{stateKey}" compare equal.
func NormalisePath(p string) string {
	p = exactRe.ReplaceAllString(p, "")
	return paramRe.ReplaceAllString(p, "{}")
}

// SplitPattern splits a ServeMux pattern into method ("" for any) and
// path.
func SplitPattern(pattern string) (method, path string) {
	if m, p, ok := strings.Cut(pattern, " "); ok {
		return m, strings.TrimSpace(p)
	}
	return "", pattern
}

// NewRoutes indexes a route table.
func NewRoutes(patterns []string) *Routes {
	r := &Routes{}
	for _, pat := range patterns {
		method, path := SplitPattern(pat)
		r.routes = append(r.routes, route{pattern: pat, method: method, segs: segments(path)})
	}
	return r
}

func segments(path string) []string {
	return strings.Split(NormalisePath(path), "/")
}

// Serves returns how well the route table serves op, and the routes that
// do (several when each serves part of it).
func (r *Routes) Serves(op Operation) (patterns []string, m Match) {
	opSegs := segments(op.Path)
	for _, rt := range r.routes {
		if !methodServes(rt.method, op.Method) {
			continue
		}
		got := matchSegments(rt.segs, opSegs)
		switch {
		case got == NoMatch || got < m:
		case got > m:
			patterns, m = []string{rt.pattern}, got
		default:
			patterns = append(patterns, rt.pattern)
		}
	}
	return patterns, m
}

// methodServes is true when a route registered for routeMethod answers
// requests with method (ServeMux answers HEAD with GET's handler).
func methodServes(routeMethod, method string) bool {
	return routeMethod == "" || routeMethod == method || (routeMethod == "GET" && method == "HEAD")
}

func matchSegments(route, spec []string) Match {
	if len(route) != len(spec) {
		return NoMatch
	}
	m := Exact
	for i := range route {
		switch {
		case route[i] == spec[i]:
		case spec[i] == "{}":
			m = Partial
		default:
			return NoMatch
		}
	}
	return m
}

var legacyVersionRe = regexp.MustCompile(`^/_matrix/client/r0/`)

// InSpec is true when a route serves (part of) some operation of the spec.
// Legacy r0 paths count as their v3 equivalent, and a route that leaves
// out an empty trailing {stateKey} counts as the operation with it: the
// spec makes that trailing slash optional.
func InSpec(pattern string, ops []Operation) bool {
	method, path := SplitPattern(pattern)
	path = legacyVersionRe.ReplaceAllString(path, "/_matrix/client/v3/")
	segs := segments(path)
	withStateKey := append(append([]string(nil), segs...), "{}")
	for _, op := range ops {
		if !methodServes(method, op.Method) {
			continue
		}
		opSegs := segments(op.Path)
		if matchSegments(segs, opSegs) != NoMatch {
			return true
		}
		if strings.HasSuffix(op.Path, "/{stateKey}") && matchSegments(withStateKey, opSegs) != NoMatch {
			return true
		}
	}
	return false
}
