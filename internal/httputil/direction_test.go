package httputil

import (
	"net/url"
	"testing"

	"github.com/chappe-matrix/chappe/internal/mxerr"
)

func TestDirection(t *testing.T) {
	cases := []struct {
		query, def, code string
		backwards        bool
	}{
		{"dir=b", "", "", true},
		{"dir=f", "", "", false},
		{"", "b", "", true},
		{"", "", "M_MISSING_PARAM", false},
		{"dir=sideways", "b", "M_INVALID_PARAM", false},
	}
	for _, c := range cases {
		q, _ := url.ParseQuery(c.query)
		back, err := Direction(q, c.def)
		code := ""
		if me, ok := mxerr.As(err); ok {
			code = me.Code
		}
		if code != c.code || (err == nil && back != c.backwards) {
			t.Errorf("%q (default %q): backwards=%v err=%v", c.query, c.def, back, err)
		}
	}
}
