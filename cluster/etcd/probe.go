package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// probeTimeout bounds probe: New fails within DialTimeout plus this.
const probeTimeout = time.Second

// explain adds a reason to err when it is etcd's client giving up after
// DialTimeout: that client reports "context deadline exceeded" whatever
// went wrong (nothing listening, a certificate refused, a wrong CA), so
// New connects to the first endpoint itself and says what it sees.
func (c Config) explain(err error) error {
	if !errors.Is(err, context.DeadlineExceeded) || len(c.Endpoints) == 0 {
		return err
	}
	why := probe(c.Endpoints[0], c.TLS, min(c.DialTimeout, probeTimeout))
	if why == "" {
		why = fmt.Sprintf("etcd did not answer within the dial timeout %v", c.DialTimeout)
	}
	return fmt.Errorf("%s: %w", why, err)
}

// probe connects to endpoint, with a TLS handshake when it is https, and
// returns what failed, or "" when the connection and the handshake
// worked. An etcd that requires client certificates refuses a client
// without one after the handshake (TLS 1.3), so probe reads briefly
// from the connection to see the refusal.
func probe(endpoint string, cfg *tls.Config, timeout time.Duration) string {
	host, secure := endpoint, cfg != nil
	if strings.HasPrefix(endpoint, "unix") {
		return "" // a unix socket: not probed
	}
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		host, secure = u.Host, secure || u.Scheme == "https"
	}
	// Three quarters of the time to connect and shake hands, the last
	// quarter to read.
	ctx, cancel := context.WithTimeout(context.Background(), timeout*3/4)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Sprintf("cannot connect to %s: %v", host, err)
	}
	defer conn.Close()
	if !secure {
		return ""
	}
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		name, _, err := net.SplitHostPort(host)
		if err != nil {
			name = host
		}
		cfg.ServerName = name
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Sprintf("TLS with %s failed: %v", host, err)
	}
	if err := tc.SetReadDeadline(time.Now().Add(timeout / 4)); err != nil {
		return ""
	}
	if _, err := tc.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("TLS with %s failed: %v", host, err)
	}
	return ""
}
