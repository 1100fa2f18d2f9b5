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
	dir, err := os.MkdirTemp("", "chappe-routes-")
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	defer os.RemoveAll(dir)
	c := *cfg
	c.DataDir = dir
	c.Components = nil // all of them
	c.Database = config.Database{URL: "", MaxOpenConns: max(cfg.Database.MaxOpenConns, 1)}
	c.NATS.URLs, c.NATS.Listen = nil, ""
	s, err := start(ctx, &c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	defer s.Close()
	return s.Base.Router.Patterns(), nil
}
