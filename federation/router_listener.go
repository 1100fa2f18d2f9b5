package federation

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// federationListener serves the router on federation.listen.
type federationListener struct {
	ln  net.Listener
	srv *http.Server
}

// startListener serves the federation routes on federation.listen, with
// TLS when tls_cert and tls_key are set (plain HTTP behind a
// TLS-terminating proxy otherwise).
func (f *Federation) startListener(context.Context) error {
	fc := f.cfg.Federation
	ln, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		return fmt.Errorf("federation.listen: %w", err)
	}
	if fc.TLSCert != "" {
		certs, err := newCertReloader(f.cfg.Path(fc.TLSCert), f.cfg.Path(fc.TLSKey), f.log)
		if err != nil {
			_ = ln.Close()
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{
			GetCertificate: certs.get,
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
		})
	}
	srv := &http.Server{
		Handler:           f.router.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
	f.router.listener = &federationListener{ln: ln, srv: srv}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("federation listener stopped", "err", err)
		}
	}()
	f.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	f.log.Info("federation listening", "addr", ln.Addr().String(), "tls", fc.TLSCert != "")
	return nil
}

// ListenAddr is the federation listener's address ("127.0.0.1:8448"), ""
// before it listens.
func (f *Federation) ListenAddr() string {
	if f.router == nil || f.router.listener == nil {
		return ""
	}
	return f.router.listener.ln.Addr().String()
}

// certReloader serves the certificate files, reloading them when they
// change on disk: a renewed certificate is taken without a restart.
type certReloader struct {
	certPath, keyPath string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
}

func newCertReloader(certPath, keyPath string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certPath: certPath, keyPath: keyPath, log: log}
	mod, err := c.lastModified()
	if err == nil {
		err = c.load(mod)
	}
	if err != nil {
		return nil, fmt.Errorf("federation.tls_cert: %w", err)
	}
	return c, nil
}

// load reads the pair written at mod; c.mu is held or c is not shared
// yet. On failure the previous pair stays and mod is still recorded, so a
// broken pair is tried once, not at every handshake.
func (c *certReloader) load(mod time.Time) error {
	c.modTime = mod
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return err
	}
	c.cert = &cert
	return nil
}

func (c *certReloader) lastModified() (time.Time, error) {
	var latest time.Time
	for _, p := range []string{c.certPath, c.keyPath} {
		st, err := os.Stat(p)
		if err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(latest) {
			latest = st.ModTime()
		}
	}
	return latest, nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mod, err := c.lastModified(); err == nil && !mod.Equal(c.modTime) {
		// A half-written pair fails to load: keep serving the old one
		// until the files change again.
		if err := c.load(mod); err != nil {
			c.log.Warn("reload federation TLS certificate", "err", err)
		}
	}
	return c.cert, nil
}
