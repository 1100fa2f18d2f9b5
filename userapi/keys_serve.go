package userapi

import (
	"context"
	"errors"
	"time"
)

// serveKeys registers the E2EE endpoints, makes sure the KEY_CHANGES
// stream exists and starts the outbox publisher (keys_outbox.go).
func (u *UserAPI) serveKeys() error {
	u.keys = &keysState{nudge: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := KeyChanges.Ensure(ctx, u.bus); err != nil {
		return err
	}
	err := errors.Join(
		UploadKeys.Serve(u.bus, u.uploadKeys),
		QueryKeys.Serve(u.bus, u.queryKeys),
		ClaimKeys.Serve(u.bus, u.claimKeys),
		QueryKeyCounts.Serve(u.bus, u.queryKeyCounts),
		QueryCrossSigning.Serve(u.bus, u.queryCrossSigning),
		UploadCrossSigning.Serve(u.bus, u.uploadCrossSigning),
		UploadSignatures.Serve(u.bus, u.uploadSignatures),
		BackupVersion.Serve(u.bus, u.backupVersion),
		BackupKeys.Serve(u.bus, u.backupKeys),
		DehydratedDevice.Serve(u.bus, u.dehydratedDevice),
	)
	if err != nil {
		return err
	}
	go u.outboxLoop()
	return nil
}
