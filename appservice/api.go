// Package appservice is the application service API (bridges, bots): for
// each registration listed under `app_services:`, a durable consumer of
// the roomserver's output pushes the events the service is interested in
// to PUT {url}/_matrix/app/v1/transactions/{txnId}, in order, batched,
// retried with back-off until the service accepts them (the consumer waits:
// nothing is dropped). It also serves the client-server endpoints that
// only application services call: /appservice/{id}/ping and the
// per-network room directory. Tokens (as_token, identity assertion) and
// registration of the services' users belong to the userapi
// (userapi/appservice.go); registration files are read by
// appservice/registration.
//
// Tables: as_room_networks (the third-party network a room was published
// under).
package appservice

// Transaction is the body of PUT /_matrix/app/v1/transactions/{txnId}.
type Transaction struct {
	Events []map[string]any `json:"events"`
}
