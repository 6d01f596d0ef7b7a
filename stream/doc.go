// Package stream carries ordered, flow-controlled byte streams between
// guild nodes, multiplexed over one connection per pair of nodes and
// direction (clustergo's smux streams), and runs the gateway's stream
// mode, which pipes each client connection to a stream on a backend node
// for games that keep their own wire protocol (clustergo's gateserver).
//
// A [Host] runs on a cluster node ([Start]). It listens for stream
// connections, publishes its endpoint in the node's member record (under
// [MetaEndpoint]), and serves the streams that peers open with the
// [Handler]s registered on it ([Host.Handle], by service name).
// [Host.OpenStream] opens a stream to a peer: the returned [Stream] is a
// net.Conn.
//
//	h, _ := stream.Start(ctx, node, stream.Config{})
//	h.Handle("replay", func(ctx context.Context, s *stream.Stream) {
//		io.Copy(s, replayOf(s.Info())) // the stream closes when the handler returns
//	})
//	s, _ := h.OpenStream(ctx, peer, stream.WithService("replay"), stream.WithInfo("match-42"))
//	defer s.Close()
//	io.Copy(dst, s)
//
// # Its own connection, not the mesh's
//
// Streams ride a TCP connection of their own per pair of nodes (one each
// way: the opener dials), dialled from the endpoint the peer's member
// record publishes, and multiplexed with github.com/hashicorp/yamux. Not
// the actor mesh's connection, because:
//
//   - the mesh is pluggable (TCP, NATS, RabbitMQ, Redis): a broker has no
//     connection between two nodes to multiplex on, and carrying bulk
//     bytes through it would cost the broker what a direct connection
//     does not;
//   - on the TCP mesh, a bulk stream would share the actor traffic's
//     socket, write queue and kernel buffers: a message would wait behind
//     a window of stream bytes (head-of-line blocking), which is what the
//     bound on actor latency under a bulk stream forbids. Over their own
//     socket, the two share only the CPUs and the network
//     (BenchmarkStreamActorLatency);
//   - the mesh's framing (one protobuf envelope per frame) and bounded
//     queue (a full queue fails a Send) are the wrong tools for a byte
//     stream, which wants flow control: a writer that gets a window
//     ahead of its reader blocks, it does not fail.
//
// The cost: one more listener per node, and one more port for operators
// to open. The connection is secured as the mesh is: with the node's mesh
// TLS (mutual TLS when the cluster file sets cluster.transport.tls) unless
// Config.TLS gives another.
//
// # Ends and errors
//
// A stream ends with io.EOF when its peer closed it, and with an error
// otherwise, on both sides: [ErrPeerGone] when the peer's node died, left
// the membership (the Host follows it, so that a departure ends the
// streams at once, not at the next keepalive), or the connection broke
// (a reset, or no answer to keepalives for Config.WriteTimeout);
// [ErrClosed] when this side's Host closed. Opening fails with
// [ErrNoPeer], [ErrTooManyStreams], [ErrNoService], [ErrRefused],
// [ErrHandshake], [ErrClosed] or [ErrPeerGone].
//
// # Bounds
//
// Every queue and every wait is bounded: streams per peer
// (Config.MaxStreamsPerPeer, checked by both ends), bytes buffered per
// stream (Config.StreamWindow: the writer blocks, up to its write
// deadline), streams not yet accepted (Config.AcceptBacklog), connections
// in their handshake (64), dials (Config.DialTimeout), opens
// (Config.OpenTimeout), writes to the connection (Config.WriteTimeout),
// Close's wait for the handlers (Config.CloseTimeout), and a gateway's
// clients (GatewayConfig.MaxConns) and their idle and write times. A
// panic in a Handler is recovered and logged: it closes its stream, not
// the node.
//
// # Goroutines and locks
//
// See Host and Gateway for the goroutines each owns; Close waits for all
// of them. Host.mu and Gateway.mu are leaves: nothing is called while
// either is held (no IO, no handler, no membership call, no log);
// docs/LOCKS.md lists them.
//
// # The wire
//
// docs/PROTOCOL-NODE.md, section 8, specifies the stream connection: the
// hellos, yamux's framing, and the open header and status byte at the
// start of each stream.
package stream
