package tests

import (
	"net"
	"testing"

	"github.com/chappe-matrix/chappe/config"
	"github.com/chappe-matrix/chappe/internal/testserver"
)

// TestSplitComponents runs the owners of data (roomserver, userapi) and the
// client-facing components (clientapi, syncapi) as two servers that share
// only the database and NATS, and has the conversation through the
// client-facing one.
func TestSplitComponents(t *testing.T) {
	back := testserver.New(t, testserver.WithComponents(config.ComponentRoomserver, config.ComponentUserAPI), exposeNATS(t))
	front := testserver.New(t, testserver.Shared(back), testserver.WithComponents(config.ComponentClientAPI, config.ComponentSyncAPI))
	// Users register through the front (the back serves no HTTP).
	runConversation(t, front.RegisterUser(t, "alice"), front.RegisterUser(t, "bob"))
}

// exposeNATS makes an embedded NATS reachable by a second server; with an
// external NATS it changes nothing.
func exposeNATS(t *testing.T) testserver.Option {
	return func(c *config.Config) {
		if len(c.NATS.URLs) > 0 {
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c.NATS.Listen = addr
	}
}
