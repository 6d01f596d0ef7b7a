package tcp_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/tcp"
	"github.com/guildkit/guild/transport/transporttest"
)

// TestConformance runs the transport conformance suite on the TCP mesh.
func TestConformance(t *testing.T) {
	cfg := tcp.Config{PendingQueue: 64, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second, DialTimeout: 2 * time.Second}
	transporttest.Run(t, transporttest.Options{
		New:          func(*testing.T) transport.Config { return cfg },
		PendingQueue: cfg.PendingQueue,
		MaxFrame:     cfg.MaxFrame,
		Silent:       silentListener,
		Inject: func(t *testing.T, _ transport.Config, endpoint string, raw []byte) {
			c, err := net.Dial("tcp", endpoint)
			if err != nil {
				t.Fatalf("dial %s: %v", endpoint, err)
			}
			defer c.Close()
			if _, err := c.Write(raw); err != nil {
				t.Fatalf("write to %s: %v", endpoint, err)
			}
		},
	})
}

// silentListener accepts connections and never answers their hello, as a
// hung node would.
func silentListener(t *testing.T, _ transport.Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}
