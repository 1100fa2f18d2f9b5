package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/chappe-matrix/chappe/internal/sqlutil"
	"github.com/chappe-matrix/chappe/userapi"
)

func runUser(args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: chappe user create NAME [--admin] [--password-file F] [--config F | --data-dir D]")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	admin := fs.Bool("admin", false, "make the user a server administrator")
	passwordFile := fs.String("password-file", "", "read the password from this file (first line); default: standard input")
	// Accept the name before or after the flags.
	rest := args[1:]
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" {
		return errors.New("user create: the user name is required")
	}
	cfg, _, err := cf.load(false)
	if err != nil {
		return err
	}
	password, err := readPassword(*passwordFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The account is written straight to the database: this works whether
	// or not the server is running, and needs no NATS.
	db, err := sqlutil.Open(ctx, cfg.DatabaseURL(), sqlutil.Options{MaxOpenConns: 2})
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()
	userID, err := userapi.CreateAccount(ctx, db, cfg.ServerName, strings.TrimPrefix(name, "@"), password, *admin)
	if err != nil {
		return err
	}
	role := "user"
	if *admin {
		role = "admin"
	}
	fmt.Printf("created %s %s\n", role, userID)
	return nil
}

func readPassword(file string) (string, error) {
	var src *os.File
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		src = f
	} else if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(os.Stderr, "Password: ")
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(pw) == 0 {
			return "", errors.New("the password is empty")
		}
		return string(pw), nil
	} else {
		src = os.Stdin
	}
	line, err := bufio.NewReader(src).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no password given")
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", errors.New("the password is empty")
	}
	return password, nil
}
