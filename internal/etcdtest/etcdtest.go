// Package etcdtest runs an embedded etcd as production runs one, for
// tests of guild's etcd clients: it serves clients over TLS only, requires
// a client certificate signed by its CA (--client-cert-auth), and has
// authentication enabled, with two users that may read and write the keys
// under "/guild/" (the default cluster prefix) and nothing else: one with
// a password, and one without, named after the common name of the client
// certificate (etcd takes the user from the certificate when the client
// gives none).
package etcdtest

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/guildkit/guild/internal/testpki"
)

// The users that Start creates.
const (
	// User, whose password is Password, may read and write the keys
	// under Prefix.
	User     = "guild"
	Password = "guild-etcd-s3cret"
	// CertUser, without a password, is the common name of the client
	// certificate of Server.PKI, and may read and write the keys under
	// Prefix.
	CertUser = "guild-node"
	// Prefix is the key prefix User may use: guild's default cluster
	// prefix "/guild", followed by "/".
	Prefix = "/guild/"
	// RootPassword is the password of the user root, which etcd requires
	// before it enables authentication.
	RootPassword = "root-s3cret"
)

// Server is a running etcd with TLS and authentication.
type Server struct {
	// Endpoints are its https client URLs.
	Endpoints []string
	// PKI holds the CA that signed its server certificate, and a client
	// certificate it accepts.
	PKI *testpki.PKI

	e    *embed.Etcd
	once sync.Once
}

// Start starts a one-member etcd in t.TempDir, serving clients on
// https://127.0.0.1 with a kernel-chosen port, and enables authentication
// with the users root, User and CertUser. t.Cleanup closes it. It fails t on error.
func Start(t testing.TB) *Server {
	t.Helper()
	pki := testpki.New(t, CertUser)
	ec := embed.NewConfig()
	ec.Name = "guild-tls"
	ec.Dir = t.TempDir()
	ec.TickMs = 10
	ec.ElectionMs = 100
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client := url.URL{Scheme: "https", Host: "127.0.0.1:0"}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	ec.ListenClientUrls = []url.URL{client}
	ec.AdvertiseClientUrls = []url.URL{client}
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ClientTLSInfo.CertFile = pki.ServerCert
	ec.ClientTLSInfo.KeyFile = pki.ServerKey
	ec.ClientTLSInfo.TrustedCAFile = pki.CAFile
	ec.ClientTLSInfo.ClientCertAuth = true
	// etcd's client authenticates again for every stream it opens, and
	// guild's lease keepers open one for every renewal: at etcd's default
	// bcrypt cost that is about 60 ms of etcd's CPU each (700 ms under
	// the race detector, which starves the renewals). The cheapest cost,
	// as an operator can set with --bcrypt-cost, keeps tests quick.
	ec.BcryptCost = 4
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatalf("etcdtest: start etcd: %v", err)
	}
	s := &Server{PKI: pki, e: e}
	t.Cleanup(s.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err = <-e.Err():
	case <-time.After(30 * time.Second):
		err = errors.New("not ready after 30s")
	}
	if err != nil {
		t.Fatalf("etcdtest: start etcd: %v", err)
	}
	for _, l := range e.Clients {
		s.Endpoints = append(s.Endpoints, "https://"+l.Addr().String())
	}
	if err := s.enableAuth(); err != nil {
		t.Fatalf("etcdtest: enable authentication: %v", err)
	}
	return s
}

// enableAuth creates root, User and CertUser, and enables
// authentication.
func (s *Server) enableAuth() error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: s.Endpoints, TLS: s.PKI.ClientTLS(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, User); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, User, Prefix, clientv3.GetPrefixRangeEnd(Prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, User, Password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, User, User); return err },
		func() error {
			_, err := cli.UserAddWithOptions(ctx, CertUser, "", &clientv3.UserAddOptions{NoPassword: true})
			return err
		},
		func() error { _, err := cli.UserGrantRole(ctx, CertUser, User); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the server and waits for it. It is safe to call twice.
func (s *Server) Close() {
	s.once.Do(s.e.Close)
}
