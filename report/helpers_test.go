package report_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/report"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var quiet = slog.New(slog.DiscardHandler)

// newNode starts an actor node with r as its Reporter, closed at cleanup.
func newNode(t testing.TB, r actor.Reporter, sup actor.Supervisor) *actor.Node {
	t.Helper()
	n, err := actor.NewNode(actor.Config{Addr: actor.MustAddr(1, 2, 3), Reporter: r, Supervisor: sup, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// resume keeps a panicking actor, and its state, going.
var resume = actor.Supervisor{Decide: func(any) actor.Directive { return actor.Resume }}

// move is a message type of the tests; its contents must never show in a
// report.
type move struct{ Secret string }

// panicker spawns an actor that panics on every move, answers "count"
// with the moves it saw, and echoes anything else asked.
func panicker(t testing.TB, n *actor.Node, opts ...actor.SpawnOption) actor.PID {
	t.Helper()
	seen := 0
	pid, err := n.SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case move:
			seen++
			panic("bad move " + string(rune('A'+len(m.Secret)%26)))
		case string:
			if m == "count" {
				c.Respond(seen)
			} else if c.IsRequest() {
				c.Respond(m)
			}
		}
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// hook is a webhook endpoint on an httptest.Server that records batches.
type hook struct {
	srv     *httptest.Server
	mu      sync.Mutex
	batches []report.Batch
	headers []http.Header
	reqs    int
	// answer, when set, decides each request's status (0: 200).
	answer func(n int, r *http.Request) int
}

func newHook(t testing.TB, answer func(n int, r *http.Request) int) *hook {
	h := &hook{answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.reqs++
		n := h.reqs
		h.mu.Unlock()
		status := 0
		if h.answer != nil {
			status = h.answer(n, r)
		}
		if status != 0 && status != http.StatusOK {
			http.Error(w, "nope", status)
			return
		}
		var b report.Batch
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &b); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("a bad request: %s %s %q: %v", r.Method, r.Header.Get("Content-Type"), body, err)
		}
		h.mu.Lock()
		h.batches = append(h.batches, b)
		h.headers = append(h.headers, r.Header.Clone())
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) snapshot() (batches []report.Batch, reqs int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]report.Batch(nil), h.batches...), h.reqs
}

// entries counts the failures the batches carry, and those they say were
// dropped.
func entries(bs []report.Batch) (got int, dropped uint64) {
	for _, b := range bs {
		got += len(b.Failures)
		dropped += b.Dropped
	}
	return got, dropped
}

// selfSigned makes a certificate for 127.0.0.1 and the pool that trusts
// it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "guild test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// mailServer is a real SMTP server (go-smtp) on a random port.
type mailServer struct {
	addr string
	user string
	pass string
	mu   sync.Mutex
	msgs []mailMsg
}

// mailMsg is one e-mail the server accepted.
type mailMsg struct {
	from   string
	to     []string
	data   string
	tls    bool
	authed bool
}

// startMailServer starts the server: with cert, it offers STARTTLS and
// accepts AUTH only over TLS; with user, it requires AUTH PLAIN.
func startMailServer(t testing.TB, cert *tls.Certificate, user, pass string) *mailServer {
	t.Helper()
	ms := &mailServer{user: user, pass: pass}
	s := smtp.NewServer(ms)
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = waitTimeout, waitTimeout
	s.AllowInsecureAuth = cert == nil
	if cert != nil {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp server: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return ms
}

func (ms *mailServer) messages() []mailMsg {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]mailMsg(nil), ms.msgs...)
}

// NewSession implements smtp.Backend.
func (ms *mailServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &mailSession{ms: ms, c: c}, nil
}

type mailSession struct {
	ms     *mailServer
	c      *smtp.Conn
	authed bool
	cur    mailMsg
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.ms.user || pass != s.ms.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.ms.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur = mailMsg{from: from}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.cur.tls = s.c.TLSConnectionState()
	s.cur.authed = s.authed
	s.cur.data = string(b)
	s.ms.mu.Lock()
	s.ms.msgs = append(s.ms.msgs, s.cur)
	s.ms.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.cur = mailMsg{} }
func (s *mailSession) Logout() error { return nil }
