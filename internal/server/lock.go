package server

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir stops a second process from running the embedded NATS on the
// same store, which would corrupt it. The lock is released when the process
// exits, however it exits.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "chappe.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another chappe process is using %s (embedded NATS cannot be shared; stop it, or use nats.listen / nats.urls)", dir)
	}
	return f, nil
}
