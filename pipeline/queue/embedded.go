package queue

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts a NATS server with JetStream in this process,
// listening on 127.0.0.1 (port 0: any free port) and storing its streams in
// dir, for one-machine runs and tests. Shut it down with Shutdown.
func StartEmbedded(dir string, port int) (*server.Server, error) {
	if port == 0 {
		port = -1 // nats-server's "any free port"
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "genpipe-embedded",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: embedded server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("queue: embedded server did not start within 10s")
	}
	return s, nil
}
