package stream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/stream"
)

// startGateway serves a Gateway on a loopback listener until the test
// ends.
func startGateway(t *testing.T, cfg stream.GatewayConfig) (*stream.Gateway, string) {
	t.Helper()
	g, err := stream.NewGateway(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	t.Cleanup(func() {
		_ = g.Close()
		if err := <-served; !errors.Is(err, stream.ErrGatewayClosed) {
			t.Errorf("Serve returned %v, want ErrGatewayClosed", err)
		}
	})
	return g, ln.Addr().String()
}

// gatewayCluster is a gateway node (type 1) and two backends (type 2),
// each running a Host; the backends echo each line with their address.
func gatewayCluster(t *testing.T) (*clustertest.Cluster, []*stream.Host, *atomic.Int64) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 2}})
	hosts := startHosts(t, c, stream.Config{})
	var served atomic.Int64
	for i := 1; i <= 2; i++ {
		self := c.Addrs[i]
		hosts[i].Handle("game", func(_ context.Context, s *stream.Stream) {
			served.Add(1)
			r := bufio.NewReader(s)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := fmt.Fprintf(s, "%v %s %s", self, s.Info(), line); err != nil {
					return
				}
			}
		})
	}
	return c, hosts, &served
}

// TestGatewayThousandClients runs 1,000 clients at once through a stream
// gateway: each is a stream of its own on a backend, which sees the
// client's address, and bytes go both ways unchanged.
func TestGatewayThousandClients(t *testing.T) {
	const clients = 1000
	c, hosts, served := gatewayCluster(t)
	g, addr := startGateway(t, stream.GatewayConfig{Host: hosts[0], NodeType: 2, Service: "game", Pick: cluster.RoundRobin})
	conns := make([]net.Conn, clients)
	for i := range conns {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = conn
		t.Cleanup(func() { _ = conn.Close() })
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	perBackend := make([]atomic.Int64, 2)
	for i, conn := range conns {
		wg.Go(func() {
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
			r := bufio.NewReader(conn)
			for round := range 3 {
				msg := fmt.Sprintf("client %d round %d\n", i, round)
				if _, err := io.WriteString(conn, msg); err != nil {
					errs <- fmt.Errorf("client %d: write: %w", i, err)
					return
				}
				line, err := r.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("client %d: read: %w", i, err)
					return
				}
				from, rest, _ := strings.Cut(line, " ")
				info, echoed, _ := strings.Cut(rest, " ")
				if echoed != msg || info != conn.LocalAddr().String() {
					errs <- fmt.Errorf("client %d: got %q", i, line)
					return
				}
				if round == 0 {
					for b := range 2 {
						if from == c.Addrs[1+b].String() {
							perBackend[b].Add(1)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	// Every client is still connected: 1,000 streams open at once.
	if n := hosts[1].Active() + hosts[2].Active(); n != clients || g.Conns() != clients || served.Load() != clients {
		t.Fatalf("%d streams on the backends, %d clients on the gateway, %d served; want %d", n, g.Conns(), served.Load(), clients)
	}
	t.Logf("clients per backend: %d and %d", perBackend[0].Load(), perBackend[1].Load())
	if perBackend[0].Load() != clients/2 || perBackend[1].Load() != clients/2 {
		t.Errorf("round robin spread the clients %d / %d", perBackend[0].Load(), perBackend[1].Load())
	}
	for _, conn := range conns {
		_ = conn.Close()
	}
	await.True(t, 10*time.Second, "every stream and client to end", func() bool {
		return hosts[0].Active()+hosts[1].Active()+hosts[2].Active() == 0 && g.Conns() == 0
	})
}

// TestGatewayBackendKilled: the clients of a backend that dies are closed
// promptly; new clients go to the other backend once the dead one has
// left the view.
func TestGatewayBackendKilled(t *testing.T) {
	c, hosts, _ := gatewayCluster(t)
	_, addr := startGateway(t, stream.GatewayConfig{Host: hosts[0], NodeType: 2, Service: "game", Pick: cluster.RoundRobin})
	var conns []net.Conn
	var readers []*bufio.Reader
	for i := range 4 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(conn)
		if _, err := fmt.Fprintf(conn, "hi %d\n", i); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		conns, readers = append(conns, conn), append(readers, r)
	}
	c.Kill(2)
	start := time.Now()
	closed := 0
	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "again %d\n", i); err != nil {
			closed++
			continue
		}
		if _, err := readers[i].ReadString('\n'); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("client %d hangs after its backend was killed", i)
			}
			closed++
		}
	}
	if closed != 2 {
		t.Fatalf("%d clients closed after the kill, want the 2 of the killed backend", closed)
	}
	t.Logf("the killed backend's clients were closed within %v", time.Since(start).Round(time.Millisecond))
	await.True(t, 3*c.TTL, "new clients to reach the live backend only", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "x\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		return err == nil && strings.HasPrefix(line, c.Addrs[1].String())
	})
}

// TestGatewayNoBackend: a client with no backend to go to is closed at
// once, and the MaxConns limit closes clients beyond it.
func TestGatewayNoBackend(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	_, addr := startGateway(t, stream.GatewayConfig{Host: hosts[0], NodeType: 7})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a client without a backend: %v, want EOF", err)
	}
	hosts[0].Handle("", echo) // node 0 is of type 1 too: it may pick itself
	hosts[1].Handle("", echo)
	g, addr := startGateway(t, stream.GatewayConfig{Host: hosts[0], NodeType: 1, MaxConns: 1})
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	await.True(t, 5*time.Second, "the first client to be served", func() bool { return g.Conns() == 1 })
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("a client past MaxConns was served")
	}
	if _, err := stream.NewGateway(stream.GatewayConfig{}); err == nil {
		t.Error("a gateway without a Host")
	}
}

// TestGatewayHalfClose: a client that closes its sending side still gets
// the backend's answer before the gateway closes it.
func TestGatewayHalfClose(t *testing.T) {
	_, hosts, _ := gatewayCluster(t)
	_, addr := startGateway(t, stream.GatewayConfig{Host: hosts[0], NodeType: 2, Service: "game"})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "last words\n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read to the end: %v", err)
	}
	if !strings.HasSuffix(string(all), " last words\n") || !strings.HasPrefix(string(all), "1.2.") {
		t.Fatalf("after a half close the client got %q", all)
	}
}
