package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/chappe-matrix/chappe/config"
)

// RouteTable lists the HTTP routes ("METHOD /path/{var}") a process with
// every component registers, for tools that compare them with the spec.
// It starts the components against SQLite and embedded NATS in a
// temporary directory, without listening, because routes are registered
// by the components' constructors and nowhere else.
func RouteTable(ctx context.Context, cfg *config.Config) ([]string, error) {
	client, _, err := RouteTables(ctx, cfg)
	return client, err
}

// RouteTables lists the client-facing routes and the federation
// listener's routes of a process with every component, federation
// included.
func RouteTables(ctx context.Context, cfg *config.Config) (client, federation []string, err error) {
	dir, err := os.MkdirTemp("", "chappe-routes-")
	if err != nil {
		return nil, nil, fmt.Errorf("route table: %w", err)
	}
	defer os.RemoveAll(dir)
	c := *cfg
	c.DataDir = dir
	c.Components = nil // all of them
	c.Database = config.Database{URL: "", MaxOpenConns: max(cfg.Database.MaxOpenConns, 1)}
	c.NATS.URLs, c.NATS.Listen = nil, ""
	c.Federation.Enabled, c.Federation.Listen = true, "127.0.0.1:0"
	c.Federation.TLSCert, c.Federation.TLSKey = "", ""
	s, err := start(ctx, &c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, fmt.Errorf("route table: %w", err)
	}
	defer s.Close()
	return s.Base.Router.Patterns(), s.Federation.Patterns(), nil
}
