package etcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is an etcd server running inside this process, for development
// (a "master" node) and tests. By default it listens on 127.0.0.1 with
// ports chosen by the kernel.
type Embedded struct {
	e         *embed.Etcd
	endpoints []string
	tmpDir    string // removed by Close when StartEmbedded made it

	once sync.Once
	err  error
}

// EmbeddedConfig configures StartEmbeddedConfig.
type EmbeddedConfig struct {
	// Dir holds the server's data. Empty means a new temporary directory,
	// which Close removes.
	Dir string
	// Listen is the host:port that clients (the nodes) connect to.
	// Default "127.0.0.1:0": a port chosen by the kernel, which Endpoints
	// reports. Use a fixed port, such as "0.0.0.0:2379", when nodes in
	// other processes or on other machines join this one.
	Listen string
	// PeerListen is the host:port of etcd's peer protocol. Default
	// "127.0.0.1:0"; the server has no peers, but etcd needs the listener.
	PeerListen string
}

// StartEmbedded starts a one-member etcd server with its data in dir and
// waits until it is ready. With dir "" it uses a new temporary directory,
// which Close removes. It listens on 127.0.0.1 with kernel-chosen ports;
// StartEmbeddedConfig chooses them.
func StartEmbedded(dir string) (*Embedded, error) {
	return StartEmbeddedConfig(EmbeddedConfig{Dir: dir})
}

// StartEmbeddedConfig starts a one-member etcd server as cfg says and waits
// until it is ready. It is tuned for quick start-up (10 ms ticks, 100 ms
// elections, ready in well under a second), and its own logging is off.
func StartEmbeddedConfig(cfg EmbeddedConfig) (*Embedded, error) {
	listen, err := embeddedURL(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster/etcd: embedded: Listen: %w", err)
	}
	peer, err := embeddedURL(cfg.PeerListen)
	if err != nil {
		return nil, fmt.Errorf("cluster/etcd: embedded: PeerListen: %w", err)
	}
	dir := cfg.Dir
	var tmp string
	if dir == "" {
		d, err := os.MkdirTemp("", "guild-etcd-*")
		if err != nil {
			return nil, fmt.Errorf("cluster/etcd: embedded: %w", err)
		}
		dir, tmp = d, d
	}
	ec := embed.NewConfig()
	ec.Name = "guild"
	ec.Dir = dir
	ec.TickMs = 10
	ec.ElectionMs = 100
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.ListenClientUrls = []url.URL{listen}
	ec.AdvertiseClientUrls = []url.URL{listen}
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("cluster/etcd: start embedded etcd: %w", err)
	}
	em := &Embedded{e: e, tmpDir: tmp}
	select {
	case <-e.Server.ReadyNotify():
	case err = <-e.Err():
	case <-time.After(30 * time.Second):
		err = errors.New("not ready after 30s")
	}
	if err != nil {
		em.Close()
		return nil, fmt.Errorf("cluster/etcd: start embedded etcd: %w", err)
	}
	for _, l := range e.Clients {
		em.endpoints = append(em.endpoints, "http://"+l.Addr().String())
	}
	return em, nil
}

// embeddedURL turns a host:port (default 127.0.0.1:0) into a listen URL.
func embeddedURL(hostport string) (url.URL, error) {
	if hostport == "" {
		hostport = "127.0.0.1:0"
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: hostport}, nil
}

// Endpoints returns the client URLs to put in Config.Endpoints.
func (em *Embedded) Endpoints() []string { return append([]string(nil), em.endpoints...) }

// Close stops the server and waits for it. It is safe to call twice.
func (em *Embedded) Close() error {
	em.once.Do(func() {
		em.e.Close()
		if em.tmpDir != "" {
			em.err = os.RemoveAll(em.tmpDir)
		}
	})
	return em.err
}
