package federation

import "testing"

func TestParseXMatrix(t *testing.T) {
	cases := []struct {
		header string
		want   xMatrix
		isXM   bool
		bad    bool
	}{
		{`X-Matrix origin="a.test",destination="b.test",key="ed25519:k",sig="c2ln"`,
			xMatrix{"a.test", "b.test", "ed25519:k", "c2ln"}, true, false},
		// Case-insensitive names and scheme, any order, spaces and tabs.
		{"x-matrix  SIG=\"c2ln\" ,\tKey=\"ed25519:k\" , Origin=a.test",
			xMatrix{"a.test", "", "ed25519:k", "c2ln"}, true, false},
		// Unquoted values with colons (older servers), escapes in quotes.
		{`X-Matrix origin=a.test:8448,key=ed25519:k,sig=c2ln,destination="b\.test"`,
			xMatrix{"a.test:8448", "b.test", "ed25519:k", "c2ln"}, true, false},
		// Unknown parameters are ignored.
		{`X-Matrix origin="a.test",key="ed25519:k",sig="c2ln",future="x"`,
			xMatrix{"a.test", "", "ed25519:k", "c2ln"}, true, false},
		{`Bearer abc`, xMatrix{}, false, false},
		{`X-Matrix origin="a.test",key="ed25519:k"`, xMatrix{}, true, true},
		{`X-Matrix origin="a.test,key="ed25519:k",sig="c2ln"`, xMatrix{}, true, true},
		{`X-Matrix origin`, xMatrix{}, true, true},
		{`X-Matrix origin="a" key="k" sig="s"`, xMatrix{}, true, true},
	}
	for _, c := range cases {
		got, isXM, err := parseXMatrix(c.header)
		if isXM != c.isXM || (err != nil) != c.bad {
			t.Errorf("%s: isXMatrix %v err %v", c.header, isXM, err)
			continue
		}
		if !c.bad && got != c.want {
			t.Errorf("%s: %+v, want %+v", c.header, got, c.want)
		}
	}
}
