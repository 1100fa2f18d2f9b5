// Package specschema reads the Matrix specification's client-server
// OpenAPI files (matrix-spec/data/api/client-server/*.yaml): the list of
// operations, for the spec-coverage table and its test, and the response
// schemas, for tests that check what the server answers. The server never
// imports it.
package specschema

// ClientServerDir is where the client-server API files are under a
// matrix-spec checkout.
const ClientServerDir = "data/api/client-server"

// ServerServerDir is where the server-server (federation) API files are.
const ServerServerDir = "data/api/server-server"
