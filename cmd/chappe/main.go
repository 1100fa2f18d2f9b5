// Command chappe is the whole homeserver: `chappe serve` runs it, the other
// subcommands are the operator's tools.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `chappe — a Matrix homeserver

Usage:
  chappe serve [--config F] [--data-dir DIR] [--listen A]  run the homeserver
  chappe user create NAME [--admin] [--password-file F]  create an account
  chappe keys generate [--out FILE]                      make a signing key
  chappe config check --config chappe.yaml               validate a configuration
  chappe version                                         print the version

With no --config, serve uses DIR/chappe.yaml (default ./chappe-data),
writing a commented one with every default on first start.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		err = runServe(args)
	case "user":
		err = runUser(args)
	case "keys":
		err = runKeys(args)
	case "config":
		err = runConfig(args)
	case "version", "--version", "-v":
		fmt.Printf("chappe %s\n", version)
	case "help", "--help", "-h":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chappe: %v\n", err)
		os.Exit(1)
	}
}
