package clientapi

import "github.com/chappe-matrix/chappe/internal/httputil"

// keyRoutes registers end-to-end encryption: device and one-time keys,
// cross-signing, send-to-device, server-side key backups, dehydrated
// devices (keys_dehydrated.go).
func (c *ClientAPI) keyRoutes(r *httputil.Router) {
	auth := httputil.RequireAuth
	r.Handle("POST "+v3+"/keys/upload", auth, c.uploadKeys)
	r.Handle("POST "+v3+"/keys/query", auth, c.queryKeys)
	r.Handle("POST "+v3+"/keys/claim", auth, c.claimKeys)
	r.Handle("GET "+v3+"/keys/changes", auth, c.keyChanges)
	r.Handle("POST "+v3+"/keys/device_signing/upload", auth, c.uploadCrossSigning)
	r.Handle("POST "+v3+"/keys/signatures/upload", auth, c.uploadSignatures)

	r.Handle("PUT "+v3+"/sendToDevice/{eventType}/{txnId}", auth, c.sendToDevice)

	r.Handle("POST "+v3+"/room_keys/version", auth, c.createBackup)
	r.Handle("GET "+v3+"/room_keys/version", auth, c.getBackup)
	r.Handle("GET "+v3+"/room_keys/version/{version}", auth, c.getBackup)
	r.Handle("PUT "+v3+"/room_keys/version/{version}", auth, c.updateBackup)
	r.Handle("DELETE "+v3+"/room_keys/version/{version}", auth, c.deleteBackup)
	for _, path := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		r.Handle("PUT "+v3+path, auth, c.putBackupKeys)
		r.Handle("GET "+v3+path, auth, c.getBackupKeys)
		r.Handle("DELETE "+v3+path, auth, c.deleteBackupKeys)
	}

	r.Handle("PUT "+msc3814+"/dehydrated_device", auth, c.putDehydratedDevice)
	r.Handle("GET "+msc3814+"/dehydrated_device", auth, c.getDehydratedDevice)
	r.Handle("DELETE "+msc3814+"/dehydrated_device", auth, c.deleteDehydratedDevice)
	r.Handle("POST "+msc3814+"/dehydrated_device/{deviceId}/events", auth, c.dehydratedEvents)
}
