package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/chappe-matrix/chappe/config"
)

func runConfig(args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New("usage: chappe config check --config chappe.yaml")
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	path := fs.String("config", "chappe.yaml", "configuration file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s is not valid:\n%w", *path, err)
	}
	fmt.Printf("%s is valid\n", *path)
	return nil
}
