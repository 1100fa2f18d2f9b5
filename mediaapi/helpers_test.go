package mediaapi

import (
	"context"
	"net/http"
	"strconv"
)

func newGet(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}

func itoa(n int) string { return strconv.Itoa(n) }
