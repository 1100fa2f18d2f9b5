package httputil

// Some routes take bodies far larger than the process-wide
// client_api.max_body_bytes (media uploads): they register with their own
// limit. The checks are the router's usual ones — a Content-Length above
// the limit is refused with M_TOO_LARGE before the handler runs, and the
// body is wrapped in http.MaxBytesReader so a chunked body cannot exceed
// it either (the handler then sees an *http.MaxBytesError).

// HandleRawWithLimit is HandleRaw with a body limit of maxBody bytes
// instead of the router's default; a non-empty action also puts the
// route under that action's rate limit.
func (rt *Router) HandleRawWithLimit(pattern string, auth Auth, action string, maxBody int64, h RawHandler) {
	rt.handleBody(pattern, auth, action, maxBody, h)
}

// HandleWithLimit is the JSON-handler form of HandleRawWithLimit.
func (rt *Router) HandleWithLimit(pattern string, auth Auth, action string, maxBody int64, h Handler) {
	rt.handleBody(pattern, auth, action, maxBody, jsonHandler(h))
}
