// Command spec-coverage writes docs/spec-coverage.md: every operation of
// the Matrix client-server API, grouped by spec file, and whether Chappe's
// route table serves it. Run it from the repository root:
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
	ops, err := specschema.Operations(specDir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	patterns, err := server.RouteTable(ctx, config.Default())
	if err != nil {
		return err
	}
	report := buildReport(ops, specschema.NewRoutes(patterns))
	if err := os.WriteFile(out, []byte(report.markdown()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Printf("%s: %d of %d current operations implemented (%.1f%%)\n",
		out, report.implemented, report.current, report.percent())
	return nil
}
