package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/chappe-matrix/chappe/config"
)

// configFlags are the flags every subcommand that needs a configuration takes.
type configFlags struct {
	path    string
	dataDir string
}

func (f *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "config", "", "configuration file (default: DATA_DIR/chappe.yaml)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default ./chappe-data)")
}

// load reads the configuration. Without --config it uses the data
// directory's chappe.yaml, writing the commented sample there first when
// writeSample is set and the file does not exist.
func (f *configFlags) load(writeSample bool) (cfg *config.Config, wrote string, err error) {
	path := f.path
	if path == "" {
		dir := f.dataDir
		if dir == "" {
			dir = config.Default().DataDir
		}
		path = filepath.Join(dir, "chappe.yaml")
		if _, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) {
			if !writeSample {
				cfg = config.Default()
				cfg.DataDir = dir
				return cfg, "", nil
			}
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, "", fmt.Errorf("create data directory: %w", err)
			}
			sample := strings.Replace(config.Sample, "data_dir: ./chappe-data", "data_dir: "+yamlQuote(dir), 1)
			if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
				return nil, "", fmt.Errorf("write %s: %w", path, err)
			}
			wrote = path
		}
	}
	cfg, err = config.Load(path)
	if err != nil {
		return nil, "", err
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	return cfg, wrote, nil
}

func yamlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Logging.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Logging.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
