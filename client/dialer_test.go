package client_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/guildkit/guild/client"
)

// TestDialerLocalAddr: Config.Dialer connects tcp and ws addresses, so
// its LocalAddr chooses the source address the gateway sees.
func TestDialerLocalAddr(t *testing.T) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	seen := make(chan string, 1)
	remember := func(addr string) {
		host, _, _ := net.SplitHostPort(addr)
		select {
		case seen <- host:
		default:
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			remember(c.RemoteAddr().String())
			c.Close() // no gateway: the dial fails after connecting
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remember(r.RemoteAddr)
		http.Error(w, "no gateway", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	for _, addr := range []string{"tcp://" + ln.Addr().String(), "ws" + srv.URL[len("http"):] + "/ws"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.Dial(ctx, client.Config{Addr: addr, Dialer: d, DialTimeout: time.Second})
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("%s: dial succeeded without a gateway", addr)
		}
		select {
		case host := <-seen:
			if host != "127.0.0.2" {
				t.Errorf("%s: the server saw the client at %s, want 127.0.0.2", addr, host)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the client never connected", addr)
		}
	}
}
