package mediaapi

import (
	"io"
	"strings"

	"golang.org/x/net/html"
)

// Bounds on what a page may put in a preview.
const (
	maxOGKeys     = 50
	maxOGValueLen = 1000
)

// parseOpenGraph reads the page's <head> for og:* meta tags, with
// <title> and meta description as fallbacks. It tokenizes (never builds
// a tree) and stops at <body>, so a huge page costs little.
func parseOpenGraph(r io.Reader) map[string]any {
	og := map[string]any{}
	var title, description string
	z := html.NewTokenizer(r)
	inTitle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return finishOG(og, title, description)
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "body":
				return finishOG(og, title, description)
			case "title":
				inTitle = true
			case "meta":
				if !hasAttr {
					continue
				}
				key, content := metaAttrs(z)
				switch {
				case strings.HasPrefix(key, "og:") && len(og) < maxOGKeys:
					if _, seen := og[key]; !seen && content != "" {
						og[key] = clip(content)
					}
				case key == "description" && description == "":
					description = clip(content)
				}
			}
		case html.TextToken:
			if inTitle && title == "" {
				title = clip(strings.TrimSpace(string(z.Text())))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "title":
				inTitle = false
			case "head":
				return finishOG(og, title, description)
			}
		}
	}
}

func metaAttrs(z *html.Tokenizer) (key, content string) {
	for {
		k, v, more := z.TagAttr()
		switch strings.ToLower(string(k)) {
		case "property", "name":
			if key == "" {
				key = strings.ToLower(strings.TrimSpace(string(v)))
			}
		case "content":
			content = strings.TrimSpace(string(v))
		}
		if !more {
			return key, content
		}
	}
}

func finishOG(og map[string]any, title, description string) map[string]any {
	if _, ok := og["og:title"]; !ok && title != "" {
		og["og:title"] = title
	}
	if _, ok := og["og:description"]; !ok && description != "" {
		og["og:description"] = description
	}
	return og
}

func clip(s string) string {
	if len(s) <= maxOGValueLen {
		return s
	}
	s = s[:maxOGValueLen]
	// Do not cut a UTF-8 sequence in half.
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}
