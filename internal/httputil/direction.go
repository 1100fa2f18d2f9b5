package httputil

import (
	"net/url"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

// Direction reads the "dir" query parameter of paginated endpoints: "b"
// (backwards) or "f". def is taken when it is absent; an empty def makes
// it required (M_MISSING_PARAM).
func Direction(q url.Values, def string) (backwards bool, err error) {
	dir := q.Get("dir")
	if dir == "" {
		dir = def
	}
	switch dir {
	case "b":
		return true, nil
	case "f":
		return false, nil
	case "":
		return false, mxerr.MissingParam("dir is required (b or f)")
	}
	return false, mxerr.InvalidParam("dir: %q is neither b nor f", dir)
}
