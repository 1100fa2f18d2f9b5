// Package httputil is what every HTTP-serving component shares: the router
// (Matrix errors for unknown routes and methods, access-token checks,
// request IDs, metrics, panic recovery) and JSON helpers.
package httputil

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode response", "err", err)
		status = http.StatusInternalServerError
		data = []byte(`{"errcode":"M_UNKNOWN","error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// WriteError writes err as a Matrix error; an error that is not one is
// logged and answered with a generic 500.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	me, ok := mxerr.As(err)
	if !ok {
		log.Error("request failed", "err", err)
		me = mxerr.Unknown("internal error")
	}
	if me.Code == "M_LIMIT_EXCEEDED" {
		if ms, ok := me.Extra["retry_after_ms"].(int64); ok {
			w.Header().Set("Retry-After", itoa((ms+999)/1000))
		}
	}
	WriteJSON(w, me.Status, me.Body())
}

// DecodeJSON reads the request body into v. An empty body is read as {}.
// Errors: M_TOO_LARGE past the router's body limit, M_NOT_JSON when the
// body is not JSON, M_BAD_JSON when it does not fit v.
func DecodeJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return mxerr.TooLarge("request body is over %d bytes", tooLarge.Limit)
		}
		return mxerr.NotJSON("could not read body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		data = []byte("{}")
	}
	if !json.Valid(data) {
		return mxerr.NotJSON("body is not valid JSON")
	}
	if data[firstNonSpace(data)] != '{' {
		return mxerr.NotJSON("body must be a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return mxerr.BadJSON("field %q has the wrong type: expected %s", typeErr.Field, typeErr.Type.String())
		}
		return mxerr.BadJSON("%v", err)
	}
	return nil
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return 0
}

func itoa(n int64) string {
	if n < 0 {
		n = 0
	}
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(buf[i:])
}
