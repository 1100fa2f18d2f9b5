package mediaapi

import (
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// sanitizeFilename keeps the last path element of a client's filename
// and drops what could trick a client or a filesystem: path separators,
// control and formatting characters (including the right-to-left override
// that makes "gpj.exe" read as "exe.jpg"), leading dots and surrounding
// spaces. The result is at most 255 bytes; "" means no name.
func sanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		b.WriteRune(r)
	}
	name = strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return strings.TrimSpace(name)
}

// sanitizeContentType keeps a well-formed media type (and its charset);
// anything else is stored as application/octet-stream.
func sanitizeContentType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") || len(mt) > 127 {
		return "application/octet-stream"
	}
	if cs := params["charset"]; cs != "" && len(cs) < 40 {
		return mime.FormatMediaType(mt, map[string]string{"charset": cs})
	}
	return mt
}

// inlineTypes are the spec's types safe to serve inline ("Serving inline
// content"): none can run script in a browser. SVG is not among them.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true,
	"application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/wave": true, "audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// contentDisposition is inline for safe types and attachment otherwise,
// with the name as RFC 6266 filename* (UTF-8, percent-encoded) and, when
// it is plain ASCII, also as filename for old clients.
func contentDisposition(contentType, name string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	disp := "attachment"
	if inlineTypes[mt] {
		disp = "inline"
	}
	name = sanitizeFilename(name)
	if name == "" {
		return disp
	}
	out := disp
	if isPlainASCII(name) {
		out += `; filename="` + name + `"`
	}
	return out + "; filename*=utf-8''" + rfc5987(name)
}

func isPlainASCII(s string) bool {
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == ';' || r == '%' {
			return false
		}
	}
	return true
}

// rfc5987 percent-encodes everything but RFC 5987's attr-chars.
func rfc5987(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
