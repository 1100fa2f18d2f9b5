package server

import (
	"context"
	"slices"
	"testing"

	"github.com/chappe-matrix/chappe/config"
)

func TestRouteTableListsEveryComponentsRoutes(t *testing.T) {
	cfg := config.Default()
	cfg.Components = []string{config.ComponentUserAPI} // RouteTable runs them all regardless
	routes, err := RouteTable(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GET /health", "POST /_matrix/client/v3/login", "GET /_matrix/client/v3/sync"} {
		if !slices.Contains(routes, want) {
			t.Errorf("%q missing from %v", want, routes)
		}
	}
}
