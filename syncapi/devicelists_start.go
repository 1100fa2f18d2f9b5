package syncapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/chappe-matrix/chappe/userapi"
)

// startE2EE creates the E2EE tables, serves the to-device and key-changes
// endpoints and starts recording KEY_CHANGES.
func (s *SyncAPI) startE2EE(ctx context.Context) error {
	if err := migrateE2EE(ctx, s.store.db); err != nil {
		return err
	}
	// The userapi creates the stream too; doing it here lets a process
	// that runs syncapi without the userapi start first.
	if err := userapi.KeyChanges.Ensure(ctx, s.bus); err != nil {
		return err
	}
	if err := errors.Join(
		SendToDevice.Serve(s.bus, s.sendToDevice),
		QueryKeyChanges.Serve(s.bus, s.queryKeyChanges),
		DehydratedToDevice.Serve(s.bus, s.dehydratedToDevice),
		s.serveFederationEDUs(), // federation_edu.go
	); err != nil {
		return err
	}
	sub, err := userapi.KeyChanges.ConsumeDurable(ctx, s.bus, keyChangesConsumer, s.onKeyChange)
	if err != nil {
		return fmt.Errorf("record key changes: %w", err)
	}
	s.subs = append(s.subs, sub)
	return nil
}
