package mediaapi

import (
	"strings"
	"testing"
)

func TestParseOpenGraph(t *testing.T) {
	page := `<!doctype html><html><head><title>Fallback title</title>
<meta property="og:title" content="Le titre">
<meta property="og:description" content="Une description">
<meta property="og:image" content="/img.png">
<meta name="description" content="ignored: og:description wins">
</head><body><meta property="og:title" content="in body: ignored"></body></html>`
	og := parseOpenGraph(strings.NewReader(page))
	if og["og:title"] != "Le titre" || og["og:description"] != "Une description" || og["og:image"] != "/img.png" {
		t.Fatalf("got %v", og)
	}
	og = parseOpenGraph(strings.NewReader(`<html><head><title> Only a title </title><meta name="description" content="desc"></head></html>`))
	if og["og:title"] != "Only a title" || og["og:description"] != "desc" {
		t.Fatalf("fallbacks: got %v", og)
	}
	og = parseOpenGraph(strings.NewReader(`<meta property="og:title" content="` + strings.Repeat("é", 2000) + `">`))
	if s := og["og:title"].(string); len(s) > maxOGValueLen || !strings.HasSuffix(s, "é") {
		t.Fatalf("not clipped on a rune boundary: %d bytes", len(s))
	}
}
