package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/report"
)

// crashModule spawns ".crash", an actor that panics on "boom".
type crashModule struct{ pid chan actor.PID }

func (m *crashModule) Start(_ context.Context, env *app.Env) error {
	pid, err := env.Actor.SpawnFunc(func(c *actor.Context) {
		if c.Message() == "boom" {
			panic("the crash module crashed")
		}
	}, actor.WithName(".crash"))
	m.pid <- pid
	return err
}

func (m *crashModule) Stop(context.Context) error { return nil }

// chanReporter hands failures to a channel, dropping what does not fit.
type chanReporter chan actor.Failure

func (c chanReporter) Report(f actor.Failure) {
	select {
	case c <- f:
	default:
	}
}

// mailBox is a go-smtp backend that keeps the e-mails it is sent, over
// TLS and after AUTH PLAIN only.
type mailBox struct {
	mu   sync.Mutex
	msgs []string
}

func (b *mailBox) NewSession(c *smtp.Conn) (smtp.Session, error) { return &mailSess{b: b, c: c}, nil }

type mailSess struct {
	b      *mailBox
	c      *smtp.Conn
	authed bool
}

func (s *mailSess) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *mailSess) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "guild" || pass != "from-a-file" {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}
func (s *mailSess) Mail(string, *smtp.MailOptions) error {
	if _, ok := s.c.TLSConnectionState(); !ok || !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *mailSess) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSess) Data(r io.Reader) error {
	d, err := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, string(d))
	s.b.mu.Unlock()
	return err
}
func (s *mailSess) Reset()        {}
func (s *mailSess) Logout() error { return nil }

// certFiles makes a self-signed certificate for 127.0.0.1, and writes it
// as PEM to dir/ca.pem.
func certFiles(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// TestReportFromTheClusterFile: a node started from a cluster file with a
// report section reports its actors' panics to the webhook and by e-mail,
// and delivers them when it shuts down.
func TestReportFromTheClusterFile(t *testing.T) {
	var (
		mu      sync.Mutex
		batches []report.Batch
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b report.Batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Header.Get("X-Token") != "t0k" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		batches = append(batches, b)
		mu.Unlock()
	}))
	defer hook.Close()

	dir := t.TempDir()
	cert, caFile := certFiles(t, dir)
	pwFile := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box := &mailBox{}
	srv := smtp.NewServer(box)
	srv.Domain, srv.ReadTimeout, srv.WriteTimeout = "localhost", 10*time.Second, 10*time.Second
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	reg := app.NewRegistry()
	pids := make(chan actor.PID, 1)
	reg.Register("crash", func() app.Module { return &crashModule{pid: pids} })
	cfg, err := config.Parse(fmt.Appendf(nil, `
nodes:
  n: {addr: 1.4.1, master: 127.0.0.1:0, modules: [crash]}
report:
  webhook: {url: %q, headers: {X-Token: t0k}, interval: 10ms}
  smtp:
    addr: %s
    from: guild@example.com
    to: [ops@example.com]
    user: guild
    password_file: %s
    ca_file: %s
    interval: 10ms
`, hook.URL+"/guild", l.Addr(), pwFile, caFile), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mine := make(chanReporter, 1)
	n, err := app.Start(ctx, cfg, "n", reg, app.WithLogger(slog.New(slog.DiscardHandler)), app.WithReporter(mine))
	if err != nil {
		t.Fatal(err)
	}
	pid := <-pids
	if err := n.Cluster().Actor().Send(pid, "boom"); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "the webhook to get the panic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(batches) > 0
	})
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-mine:
		if f.PID != pid {
			t.Errorf("WithReporter's reporter got %+v", f)
		}
	default:
		t.Error("WithReporter's reporter got nothing")
	}
	mu.Lock()
	b := batches[0]
	mu.Unlock()
	f := b.Failures[0]
	if b.Source != "n" || f.Node != "1.4.1" || f.PID != pid.String() || len(f.Names) != 1 || f.Names[0] != ".crash" ||
		f.MessageType != "string" || f.Reason != "the crash module crashed" || !strings.Contains(f.Stack, "crashModule") {
		t.Errorf("batch %+v", b)
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	if len(box.msgs) != 1 || !strings.Contains(box.msgs[0], "Subject: [guild] 1 failure on n (1.4.1)") ||
		!strings.Contains(box.msgs[0], "the crash module crashed") {
		t.Errorf("e-mails %q", box.msgs)
	}
}
