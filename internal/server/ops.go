package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chappe-matrix/chappe/internal/base"
	"github.com/chappe-matrix/chappe/internal/httputil"
	"github.com/chappe-matrix/chappe/internal/mxerr"
	"github.com/chappe-matrix/chappe/internal/sqlutil"
)

// registerOpsRoutes adds /health and /metrics for operators.
func registerOpsRoutes(b *base.Base) {
	metrics := promhttp.HandlerFor(b.Metrics, promhttp.HandlerOpts{})
	b.Router.HandleRaw("GET /metrics", httputil.NoAuth, func(w http.ResponseWriter, req *httputil.Request) error {
		metrics.ServeHTTP(w, req.Request)
		return nil
	})
	b.Router.Handle("GET /health", httputil.NoAuth, func(req *httputil.Request) (any, error) {
		if err := b.DB.QueryRowContext(req.Context(), "SELECT 1").Scan(new(int)); err != nil {
			return nil, mxerr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "database unreachable")
		}
		if !b.Bus.NC.IsConnected() {
			return nil, mxerr.New(http.StatusServiceUnavailable, "M_UNKNOWN", "nats unreachable")
		}
		return map[string]string{"status": "ok"}, nil
	})
}

func registerDBMetrics(reg prometheus.Registerer, db *sqlutil.DB) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("chappe_db_open_connections", "Open database connections.", func() float64 { return float64(db.Stats().OpenConnections) })
	gauge("chappe_db_in_use_connections", "Database connections in use.", func() float64 { return float64(db.Stats().InUse) })
	gauge("chappe_db_wait_count", "Requests that waited for a database connection.", func() float64 { return float64(db.Stats().WaitCount) })
	gauge("chappe_db_wait_seconds", "Time spent waiting for a database connection.", func() float64 { return db.Stats().WaitDuration.Seconds() })
}
