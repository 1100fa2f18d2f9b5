// Command spec-coverage writes docs/spec-coverage.md: every operation of
// the Matrix client-server and server-server APIs, grouped by spec file,
// and whether Chappe's route tables serve it. Run it from the repository root:
//
//	go run ./cmd/spec-coverage [-spec ../shared/matrix-spec] [-out docs/spec-coverage.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/server"
	"github.com/chappe-matrix/chappe/internal/specschema"
)

func main() {
	spec := flag.String("spec", "../shared/matrix-spec", "matrix-spec checkout (its data/api/client-server/*.yaml are read)")
	out := flag.String("out", "docs/spec-coverage.md", "file to write")
	flag.Parse()
	if err := run(*spec, *out); err != nil {
		fmt.Fprintln(os.Stderr, "spec-coverage:", err)
		os.Exit(1)
	}
}

func run(specDir, out string) error {
	clientOps, err := specschema.OperationsOf(specDir, specschema.ClientServerDir)
	if err != nil {
		return err
	}
	fedOps, err := specschema.OperationsOf(specDir, specschema.ServerServerDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clientRoutes, fedRoutes, err := server.RouteTables(ctx, config.Default())
	if err != nil {
		return err
	}
	client := buildReport(clientOps, specschema.NewRoutes(clientRoutes))
	client.title, client.apiDir = "Client-server API", specschema.ClientServerDir
	fed := buildReport(fedOps, specschema.NewRoutes(fedRoutes))
	fed.title, fed.apiDir = "Server-server API", specschema.ServerServerDir
	doc := header + client.markdown() + "\n" + fed.markdown()
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	for _, r := range []report{client, fed} {
		fmt.Printf("%s: %s: %d of %d current operations implemented (%.1f%%)\n",
			out, r.title, r.implemented, r.current, r.percent())
	}
	return nil
}
