// Command gateway is a real guild gateway for the TypeScript SDK's tests
// (clients/ts/test/resume.test.ts): one node, a service "svc" (Login binds
// the session to the user in its request; Echo echoes), a gateway that
// keeps sessions for resumption (ResumeWindow 10s, with a ResumeKey, so
// that resume tokens carry sealed records and are renewed by
// SessionUpdate frames as they change), and, in front of its
// WebSocket listener, a TCP proxy that the test drives on stdin to cut
// its clients' connections as a network loss would.
//
// It prints "ready <ws URL>" once it listens, then answers each command
// line with "ok" (or "error <why>"):
//
//	down            refuse new connections (close them at once)
//	up              let them through again
//	cut             close every proxied connection, without a goodbye
//	detached <n>    wait until the gateway keeps n detached sessions
//	push <id> <s>   push StringValue s on route "svc.P" to session id
//
// It ends when stdin closes.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer n.Close()
	svc := gate.NewService("svc")
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.Value)
		return wrapperspb.String(req.Value), nil
	})
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := svc.Serve(ctx, n)
	if err != nil {
		return err
	}
	g, err := gate.New(gate.Config{
		Node:      n,
		Routes:    map[string]gate.Route{"svc": gate.To(rpc.To(pid))},
		Public:    []string{"svc.Login"},
		Limits:    gate.Limits{ResumeWindow: 10 * time.Second},
		ResumeKey: []byte("a test key of the ts sdk, 32 b.."),
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer g.Close()
	ws, err := gatews.Listen(g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		return err
	}
	p, err := newProxy(ws.String())
	if err != nil {
		return err
	}
	defer p.close()
	fmt.Printf("ready ws://%s/ws\n", p.ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := command(g, n, p, strings.Fields(in.Text())); err != nil {
			fmt.Println("error", err)
		} else {
			fmt.Println("ok")
		}
	}
	return nil
}

func command(g *gate.Gateway, n *actor.Node, p *proxy, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command")
	}
	switch {
	case args[0] == "down" || args[0] == "up":
		p.mu.Lock()
		p.down = args[0] == "down"
		p.mu.Unlock()
	case args[0] == "cut":
		p.cut()
	case args[0] == "detached" && len(args) == 2:
		want, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		for deadline := time.Now().Add(10 * time.Second); g.Detached() != want; {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d sessions detached, want %d", g.Detached(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	case args[0] == "push" && len(args) == 3:
		return gate.Push(n, args[1], "svc.P", wrapperspb.String(args[2]))
	default:
		return fmt.Errorf("unknown command %q", strings.Join(args, " "))
	}
	return nil
}

// proxy forwards TCP connections to the gateway.
type proxy struct {
	ln   net.Listener
	to   string
	mu   sync.Mutex
	down bool
	open map[net.Conn]struct{}
	wg   sync.WaitGroup
}

func newProxy(to string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, to: to, open: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *proxy) accept() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			nc.Close()
			continue
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			nc.Close()
			continue
		}
		p.mu.Lock()
		p.open[nc], p.open[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, nc); up.Close(); nc.Close() })
		p.wg.Go(func() { _, _ = io.Copy(nc, up); up.Close(); nc.Close() })
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		c.Close()
	}
	clear(p.open)
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}
