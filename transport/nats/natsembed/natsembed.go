// Package natsembed runs a NATS server inside the process
// (github.com/nats-io/nats-server/v2), so that a development cluster on
// transport/nats needs no NATS installed, the way the master node embeds
// etcd. It lives apart from transport/nats so that a program that uses an
// external NATS does not link the server.
//
// An embedded server is a single server with no persistence: good for
// development and tests, not for production, where a NATS cluster of its
// own keeps the nodes' traffic flowing when one machine dies.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ReadyTimeout bounds how long Start waits for the server to accept
// clients.
const ReadyTimeout = 10 * time.Second

// Server is a running embedded NATS server.
type Server struct {
	s    *server.Server
	once sync.Once
}

// Start starts a server listening on listen ("host:port"; port 0 picks a
// free one, see URL) and returns once it accepts clients.
func Start(listen string) (*Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("natsembed: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("natsembed: listen address %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, NoLog: true, MaxPayload: 8 << 20})
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(ReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("natsembed: the server did not accept clients within " + ReadyTimeout.String() + " (is " + listen + " taken?)")
	}
	return &Server{s: s}, nil
}

// URL returns the server's client URL, "nats://host:port".
func (s *Server) URL() string { return "nats://" + s.Addr() }

// Addr returns the "host:port" the server listens on.
func (s *Server) Addr() string { return s.s.Addr().String() }

// Close shuts the server down and waits until it has: every client is
// disconnected. It is safe to call twice.
func (s *Server) Close() {
	s.once.Do(func() {
		s.s.Shutdown()
		s.s.WaitForShutdown()
	})
}
