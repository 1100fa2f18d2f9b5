package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/chappe-matrix/chappe/internal/signingkey"
)

func runKeys(args []string) error {
	if len(args) == 0 || args[0] != "generate" {
		return errors.New("usage: chappe keys generate [--out FILE]")
	}
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	out := fs.String("out", "", "write the key to FILE (mode 0600) instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	key, err := signingkey.Generate()
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Print(key.Encode())
		return nil
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key (an existing key is never overwritten): %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(key.Encode()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s)\n", *out, key.ID)
	return nil
}
