// Package mxerr is the one Matrix error type of Chappe. Components return it
// from bus handlers and HTTP handlers alike, so an error raised deep in the
// roomserver reaches the client with its errcode and status intact.
package mxerr

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a Matrix error: an errcode, a human message and the HTTP status.
type Error struct {
	Status  int            `json:"status"`
	Code    string         `json:"errcode"`
	Message string         `json:"error"`
	Extra   map[string]any `json:"extra,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Body is the JSON object sent to clients.
func (e *Error) Body() map[string]any {
	body := make(map[string]any, 2+len(e.Extra))
	for k, v := range e.Extra {
		body[k] = v
	}
	// A user-interactive-auth challenge is a 401 without an errcode.
	if e.Code != "" {
		body["errcode"] = e.Code
	}
	if e.Message != "" {
		body["error"] = e.Message
	}
	return body
}

// New makes an error with a status, a code and a formatted message.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// As finds a Matrix error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "M_FORBIDDEN", format, args...)
}
func NotFound(format string, args ...any) *Error {
	return New(http.StatusNotFound, "M_NOT_FOUND", format, args...)
}
func BadJSON(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_BAD_JSON", format, args...)
}
func NotJSON(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_NOT_JSON", format, args...)
}
func InvalidParam(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_INVALID_PARAM", format, args...)
}
func MissingParam(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_MISSING_PARAM", format, args...)
}
func Unrecognized(status int, format string, args ...any) *Error {
	return New(status, "M_UNRECOGNIZED", format, args...)
}
func MissingToken() *Error {
	return New(http.StatusUnauthorized, "M_MISSING_TOKEN", "missing access token")
}
func UnknownToken(softLogout bool) *Error {
	e := New(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "unknown or expired access token")
	if softLogout {
		e.Extra = map[string]any{"soft_logout": true}
	}
	return e
}
func TooLarge(format string, args ...any) *Error {
	return New(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", format, args...)
}
func Unknown(format string, args ...any) *Error {
	return New(http.StatusInternalServerError, "M_UNKNOWN", format, args...)
}
func UserInUse(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_USER_IN_USE", format, args...)
}
func InvalidUsername(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_INVALID_USERNAME", format, args...)
}
func UnsupportedRoomVersion(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", format, args...)
}
func LimitExceeded(retryAfterMS int64) *Error {
	e := New(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "too many requests")
	e.Extra = map[string]any{"retry_after_ms": retryAfterMS}
	return e
}
