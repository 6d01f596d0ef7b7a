package etcd

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Embedded is an etcd server running inside this process, for development
// and tests. It listens on 127.0.0.1 with ports chosen by the kernel.
type Embedded struct {
	e         *embed.Etcd
	endpoints []string
	tmpDir    string // removed by Close when StartEmbedded made it

	once sync.Once
	err  error
}

// StartEmbedded starts a one-member etcd server with its data in dir and
// waits until it is ready. With dir "" it uses a new temporary directory,
// which Close removes. It is tuned for quick start-up (10 ms ticks, 100 ms
// elections), and its own logging is off.
func StartEmbedded(dir string) (*Embedded, error) {
	var tmp string
	if dir == "" {
		d, err := os.MkdirTemp("", "guild-etcd-*")
		if err != nil {
			return nil, fmt.Errorf("cluster/etcd: embedded: %w", err)
		}
		dir, tmp = d, d
	}
	cfg := embed.NewConfig()
	cfg.Name = "guild"
	cfg.Dir = dir
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{local}
	cfg.AdvertiseClientUrls = []url.URL{local}
	cfg.ListenPeerUrls = []url.URL{local}
	cfg.AdvertisePeerUrls = []url.URL{local}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
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
