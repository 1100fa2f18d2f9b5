package mediaapi

import (
	"strings"
	"testing"
)

func TestSanitizeFilename(t *testing.T) {
	cases := map[string]string{
		"photo.jpg":                "photo.jpg",
		"../../etc/passwd":         "passwd",
		`..\..\windows\win.ini`:    "win.ini",
		"/abs/path/x.png":          "x.png",
		"..":                       "",
		".hidden":                  "hidden",
		"a\x00b\nc\x7f.txt":        "abc.txt",
		"invoice\u202Egpj.exe":     "invoicegpj.exe",
		"  spaced  ":               "spaced",
		"résumé.pdf":               "résumé.pdf",
		strings.Repeat("é", 200):   strings.Repeat("é", 127),
		"dir/":                     "",
		"normal name (1).tar.gz":   "normal name (1).tar.gz",
		"\xff\xfeinvalid-utf8.txt": "invalid-utf8.txt",
	}
	for in, want := range cases {
		if got := sanitizeFilename(in); got != want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSanitizeContentType(t *testing.T) {
	cases := map[string]string{
		"image/png":                          "image/png",
		"IMAGE/PNG":                          "image/png",
		"text/plain; charset=utf-8":          "text/plain; charset=utf-8",
		"text/html; charset=utf-8; evil=yes": "text/html; charset=utf-8",
		"":                                   "application/octet-stream",
		"not a type":                         "application/octet-stream",
		"image/png\r\nX-Injected: 1":         "application/octet-stream",
	}
	for in, want := range cases {
		if got := sanitizeContentType(in); got != want {
			t.Errorf("sanitizeContentType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContentDisposition(t *testing.T) {
	cases := []struct{ ct, name, want string }{
		{"image/png", "a.png", `inline; filename="a.png"; filename*=utf-8''a.png`},
		{"image/svg+xml", "a.svg", `attachment; filename="a.svg"; filename*=utf-8''a.svg`},
		{"text/html", "", "attachment"},
		{"text/plain; charset=utf-8", "", "inline"},
		{"application/pdf", "résumé; x.pdf", `attachment; filename*=utf-8''r%C3%A9sum%C3%A9%3B%20x.pdf`},
		{"video/mp4", `a"b.mp4`, `inline; filename*=utf-8''a%22b.mp4`},
	}
	for _, c := range cases {
		if got := contentDisposition(c.ct, c.name); got != c.want {
			t.Errorf("contentDisposition(%q, %q) = %q, want %q", c.ct, c.name, got, c.want)
		}
	}
}

func TestValidMediaID(t *testing.T) {
	for _, id := range []string{"abc", "A-b_9", newMediaID()} {
		if !ValidMediaID(id) {
			t.Errorf("%q refused", id)
		}
	}
	for _, id := range []string{"", "..", "a/b", "a%2Fb", "a.b", "é", strings.Repeat("a", 256)} {
		if ValidMediaID(id) {
			t.Errorf("%q accepted", id)
		}
	}
}
