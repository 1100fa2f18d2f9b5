package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chappe-matrix/chappe/internal/server"
)

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	listen := fs.String("listen", "", "client API address, overriding client_api.listen (e.g. 0.0.0.0:8008 in a container)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, wrote, err := cf.load(true)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.ClientAPI.Listen = *listen
	}
	log := newLogger(cfg)
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("chappe started", "server_name", cfg.ServerName, "listen", srv.Addr(),
		"database", srv.Base.DB.Dialect.String(), "components", cfg.Components, "startup", time.Since(start).Round(time.Millisecond))
	if wrote != "" {
		fmt.Fprintf(os.Stderr, "Wrote a commented configuration to %s\n", wrote)
	}
	if srv.KeyCreated {
		fmt.Fprintf(os.Stderr, "Generated the signing key %s\n", cfg.Path(cfg.SigningKeyPath))
	}
	if addr := srv.Addr(); addr != "" {
		clientURL := "http://" + addr
		if cfg.PublicBaseURL != "" {
			clientURL = cfg.BaseURL()
		}
		fmt.Fprintf(os.Stderr, "\nChappe is serving %s.\n  Point a Matrix client at: %s\n  Create the first user:    chappe user create alice --admin --data-dir %s\n\n",
			cfg.ServerName, clientURL, cfg.DataDir)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}
