package stream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultMaxStreamsPerPeer = 1024
	DefaultStreamWindow      = 1 << 20 // 1 MiB
	DefaultAcceptBacklog     = 256
	DefaultDialTimeout       = 2 * time.Second
	DefaultOpenTimeout       = 5 * time.Second
	DefaultKeepAlive         = 2 * time.Second
	DefaultWriteTimeout      = 5 * time.Second
	DefaultCloseTimeout      = 5 * time.Second
	DefaultBusyRate          = 100e6 // bytes per second: 800 Mbit/s
)

// minStreamWindow is yamux's initial window: a smaller one cannot be set.
const minStreamWindow = 256 << 10

// MetaEndpoint is the key of a node's member record (cluster.Member.Meta)
// under which its Host publishes the endpoint ("host:port") that other
// nodes dial for streams.
const MetaEndpoint = "guild.stream"

// Config configures a Host. The zero value is valid: it listens on
// 127.0.0.1 on a random port, with the node's mesh TLS.
type Config struct {
	// Listen is the TCP address the Host accepts stream connections on.
	// Default "127.0.0.1:0".
	Listen string
	// Advertise, optional, is the endpoint other nodes dial, published in
	// this node's record under MetaEndpoint: for a node behind NAT or a
	// proxy. Empty means the address the Host listens on.
	Advertise string
	// TLS secures the stream connections. nil means the node's own
	// (cluster.Node.TLS, the mesh's mutual TLS when the cluster file sets
	// cluster.transport.tls), so streams are never weaker than the mesh.
	// Set it only to give streams their own certificates; to run streams
	// without TLS on a node whose mesh has it, set Insecure instead.
	TLS *tls.Config
	// Insecure runs the stream connections in clear even when the node's
	// mesh runs TLS. For tests and benchmarks.
	Insecure bool
	// MaxStreamsPerPeer bounds the streams open at once between this node
	// and one peer, in each direction: OpenStream beyond it fails with
	// ErrTooManyStreams, and so does a peer's open beyond it. Default
	// DefaultMaxStreamsPerPeer (1024).
	MaxStreamsPerPeer int
	// StreamWindow is the bytes a stream buffers for its reader (yamux's
	// receive window, its flow control): a writer that gets that far
	// ahead of the reader blocks (up to its write deadline). It bounds
	// the memory of every stream. Default DefaultStreamWindow (1 MiB); at
	// least 256 KiB.
	StreamWindow int
	// AcceptBacklog bounds the streams a connection holds that the Host
	// has not picked up yet. Default DefaultAcceptBacklog (256).
	AcceptBacklog int
	// DialTimeout bounds dialling a peer, TLS and hellos included.
	// Default DefaultDialTimeout (2s).
	DialTimeout time.Duration
	// OpenTimeout bounds OpenStream when its ctx has no earlier deadline,
	// and how long the acceptor waits for a stream's open header. Default
	// DefaultOpenTimeout (5s).
	OpenTimeout time.Duration
	// KeepAlive is the interval of the connection's pings: a peer that
	// answers none for WriteTimeout is declared gone. Default
	// DefaultKeepAlive (2s).
	KeepAlive time.Duration
	// WriteTimeout bounds every write to the connection (a frame that
	// cannot be written in that time ends it). Default
	// DefaultWriteTimeout (5s).
	WriteTimeout time.Duration
	// CloseTimeout bounds how long Close waits for the stream handlers to
	// return after their streams were closed. Default DefaultCloseTimeout
	// (5s).
	CloseTimeout time.Duration
	// MaxRate, optional, caps the bytes per second that all the Host's
	// streams write together (0: no cap), so that bulk streams leave the
	// node's actor traffic its share of the CPUs and the network: a
	// Write past the budget waits (up to its write deadline). A burst of
	// up to a hundredth of a second's worth goes at once.
	MaxRate float64
	// BusyRate caps the bytes per second that the streams to one peer
	// write together while actor messages flow between this node and that
	// peer, so that actor traffic goes first: with a bulk stream running
	// flat out beside it on a small machine, an actor request's p99 grows
	// several times; paced to 100 MB/s, by a fraction
	// (docs/PERFORMANCE.md, BenchmarkStreamActorLatency). A peer counts
	// as busy for 50 ms after its envelope counters (the transport's
	// PeerStats, sampled at most every 5 ms) last moved; with no actor
	// message either way, its streams run at full speed (or MaxRate). A
	// transport without per-peer counters (the brokers) never makes a
	// peer busy. Default DefaultBusyRate (100 MB/s); negative: no such
	// cap.
	BusyRate float64
	// Logger receives the Host's logs. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("stream: Config.%s is negative (%d)", name, v))
		}
	}
	neg("MaxStreamsPerPeer", int64(c.MaxStreamsPerPeer))
	neg("StreamWindow", int64(c.StreamWindow))
	neg("AcceptBacklog", int64(c.AcceptBacklog))
	neg("DialTimeout", int64(c.DialTimeout))
	neg("OpenTimeout", int64(c.OpenTimeout))
	neg("KeepAlive", int64(c.KeepAlive))
	neg("WriteTimeout", int64(c.WriteTimeout))
	neg("CloseTimeout", int64(c.CloseTimeout))
	if c.MaxRate < 0 {
		errs = append(errs, fmt.Errorf("stream: Config.MaxRate is negative (%v)", c.MaxRate))
	}
	if math.IsNaN(c.MaxRate) || math.IsNaN(c.BusyRate) {
		errs = append(errs, errors.New("stream: Config.MaxRate or BusyRate is NaN"))
	}
	if c.StreamWindow > 0 && c.StreamWindow < minStreamWindow {
		errs = append(errs, fmt.Errorf("stream: Config.StreamWindow %d is below yamux's minimum %d", c.StreamWindow, minStreamWindow))
	}
	if c.StreamWindow > 1<<30 {
		errs = append(errs, fmt.Errorf("stream: Config.StreamWindow %d is above 1 GiB", c.StreamWindow))
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.BusyRate == 0 {
		c.BusyRate = DefaultBusyRate
	}
	def(&c.MaxStreamsPerPeer, DefaultMaxStreamsPerPeer)
	def(&c.StreamWindow, DefaultStreamWindow)
	def(&c.AcceptBacklog, DefaultAcceptBacklog)
	defd(&c.DialTimeout, DefaultDialTimeout)
	defd(&c.OpenTimeout, DefaultOpenTimeout)
	defd(&c.KeepAlive, DefaultKeepAlive)
	defd(&c.WriteTimeout, DefaultWriteTimeout)
	defd(&c.CloseTimeout, DefaultCloseTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
