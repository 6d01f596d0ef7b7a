package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// ErrBadConfig is returned by Config.Validate and New for an invalid Config.
var ErrBadConfig = errors.New("cluster/etcd: bad config")

// Defaults used by New for zero Config fields.
const (
	DefaultPrefix      = "/guild"
	DefaultTTL         = 5 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Config configures a Membership. The zero value of every field but
// Endpoints selects a default.
type Config struct {
	// Endpoints are the etcd client URLs, e.g. "http://127.0.0.1:2379",
	// or "https://etcd-1:2379" for an etcd that serves TLS. Required. They
	// are all http or all https: etcd's client connects to every endpoint
	// with the first one's scheme.
	Endpoints []string
	// TLS, when set, is the TLS configuration of the connections to etcd,
	// whose endpoints must then be https: RootCAs (the CA that signed
	// etcd's server certificate; nil: the system's), ServerName
	// (default: each endpoint's host) and, for an etcd that requires
	// client certificates (--client-cert-auth), Certificates: mutual TLS.
	// Nil with https endpoints: TLS with the system's CAs and no client
	// certificate. It is not modified.
	TLS *tls.Config
	// Username and Password authenticate every request to an etcd that
	// has authentication enabled (etcdctl auth enable). Give both or
	// neither: etcd's client sends no credentials without a password.
	// With neither, an etcd with authentication takes the user from the
	// client certificate's common name, if TLS gives one. The password
	// is never logged nor put in an error.
	Username string
	Password string
	// Prefix is the key prefix of this cluster; default "/guild". It must
	// start with "/"; a trailing "/" is dropped.
	Prefix string
	// TTL is how long a node may be silent before etcd drops its record and
	// names. Default 5s, minimum 1s. etcd lease TTLs are whole seconds, so a
	// fraction is rounded up (1.2s becomes 2s).
	TTL time.Duration
	// DialTimeout bounds connecting to etcd, New's initial read, and each
	// internal request made without a caller's ctx. Default 5s.
	DialTimeout time.Duration
	// JoinWait is how long Join keeps trying while another live record
	// holds the address (ErrAddrInUse): typically a crashed predecessor of
	// this node, whose lease expires within TTL. Default 0: fail at once.
	JoinWait time.Duration
	// Logger receives lease losses, re-grants and resyncs. Default: discard.
	Logger *slog.Logger
}

// Validate reports the first problem with c, as an error matching
// ErrBadConfig. Zero fields are valid: they select defaults.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("%w: no endpoints", ErrBadConfig)
	}
	for _, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			return fmt.Errorf("%w: empty endpoint", ErrBadConfig)
		}
	}
	if c.Prefix != "" && (!strings.HasPrefix(c.Prefix, "/") || strings.Trim(c.Prefix, "/") == "") {
		return fmt.Errorf("%w: prefix %q must start with / and name something", ErrBadConfig, c.Prefix)
	}
	if c.TTL < 0 || (c.TTL > 0 && c.TTL < time.Second) {
		return fmt.Errorf("%w: TTL %v is below the minimum 1s", ErrBadConfig, c.TTL)
	}
	if c.JoinWait < 0 {
		return fmt.Errorf("%w: negative join wait %v", ErrBadConfig, c.JoinWait)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("%w: negative dial timeout %v", ErrBadConfig, c.DialTimeout)
	}
	if err := c.checkSchemes(); err != nil {
		return err
	}
	switch {
	case c.Password != "" && c.Username == "":
		return fmt.Errorf("%w: a password without a username", ErrBadConfig)
	case c.Username != "" && c.Password == "":
		return fmt.Errorf("%w: username %q without a password (etcd's client would send no credentials)", ErrBadConfig, c.Username)
	}
	return nil
}

// checkSchemes checks that the endpoints are all http or all https, and
// https when TLS is set: etcd's client uses the first endpoint's scheme
// for every connection, and drops TLS for http.
func (c Config) checkSchemes() error {
	first := ""
	for _, e := range c.Endpoints {
		scheme, _, found := strings.Cut(e, "://")
		if !found {
			continue // host:port: TLS when set, else plain text
		}
		scheme = strings.ToLower(scheme)
		if c.TLS != nil && (scheme == "http" || scheme == "unix") {
			return fmt.Errorf("%w: endpoint %q is plain text but TLS is set: write %ss://", ErrBadConfig, e, scheme)
		}
		if first == "" {
			first = scheme
		} else if scheme != first {
			return fmt.Errorf("%w: endpoint %q is %s but the first is %s: etcd's client uses one scheme for all", ErrBadConfig, e, scheme, first)
		}
	}
	return nil
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ttlSeconds is the lease TTL: TTL rounded up to whole seconds.
func (c Config) ttlSeconds() int64 {
	return int64((c.TTL + time.Second - 1) / time.Second)
}

// as names the user in connection errors, " as user NAME", or "" without
// one. The password is never shown.
func (c Config) as() string {
	if c.Username == "" {
		return ""
	}
	return fmt.Sprintf(" as user %q", c.Username)
}
