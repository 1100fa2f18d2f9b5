// Package base holds what every component of a process is given: the
// configuration, the database, the bus, the signing key, the logger, the
// metrics registry and the client-facing router.
package base

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/bus"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/signingkey"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// Base is shared by the components of one process.
type Base struct {
	Config  *config.Config
	DB      *sqlutil.DB
	Bus     *bus.Bus
	Key     signingkey.Key
	Log     *slog.Logger
	Metrics *prometheus.Registry
	Router  *httputil.Router
}

// Component is a running part of the homeserver.
type Component interface {
	Close()
}
