package testserver

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chappe-matrix/chappe/config"
)

// deleteStreams removes a test server's streams from the shared NATS so
// repeated test runs do not fill it.
func deleteStreams(cfg *config.Config) {
	nc, err := nats.Connect(strings.Join(cfg.NATS.URLs, ","))
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	prefix := strings.ToUpper(cfg.NATS.SubjectPrefix) + "_"
	names := js.StreamNames(ctx)
	var doomed []string
	for name := range names.Name() {
		if strings.HasPrefix(name, prefix) {
			doomed = append(doomed, name)
		}
	}
	for _, name := range doomed {
		_ = js.DeleteStream(ctx, name)
	}
}
