package report

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
)

// SMTP defaults.
const (
	// DefaultSMTPInterval is the least time between two e-mails.
	DefaultSMTPInterval = time.Minute
	// DefaultSMTPTimeout bounds one e-mail's whole conversation with the
	// server.
	DefaultSMTPTimeout = 30 * time.Second
	// DefaultSMTPBatch bounds the failures of one e-mail.
	DefaultSMTPBatch = 50
)

// SMTPConfig configures an SMTP reporter. Zero fields take their
// defaults.
type SMTPConfig struct {
	// Addr is the server's host:port, such as smtp.example.com:587.
	// Required.
	Addr string
	// From is the sender's address. Required.
	From string
	// To are the recipients. At least one.
	To []string
	// User, when set, logs in with AUTH PLAIN (after STARTTLS).
	User string
	// Password is User's password.
	Password string
	// NoStartTLS sends in the clear, without STARTTLS: only for a relay
	// on the same host or a network you trust. Without it a server that
	// does not offer STARTTLS is an error (not retried), and nothing is
	// sent in the clear.
	NoStartTLS bool
	// TLS configures STARTTLS. Default: the system's roots, and the
	// server name from Addr. A TLS without ServerName gets Addr's host.
	TLS *tls.Config
	// Source names the sender in the subject and the body (app sets the
	// node's name).
	Source string
	// Queue bounds the failures waiting to be sent; beyond it they are
	// dropped and counted. Default DefaultQueue.
	Queue int
	// Batch bounds the failures of one e-mail. Default DefaultSMTPBatch.
	Batch int
	// Interval is the least time between two e-mails: the rate limit.
	// Default DefaultSMTPInterval.
	Interval time.Duration
	// Timeout bounds one e-mail. Default DefaultSMTPTimeout.
	Timeout time.Duration
	// Retries is how many times an e-mail that met a network error or a
	// transient (4xx) answer is tried again; negative: never. A permanent
	// (5xx) answer is not retried. Default DefaultRetries.
	Retries int
	// Backoff is the wait before the first retry, doubled after each (up
	// to MaxBackoff), with jitter. Default DefaultBackoff.
	Backoff time.Duration
	// Logger receives failed deliveries. Default slog.Default().
	Logger *slog.Logger
}

// SMTP is an actor.Reporter that e-mails batches of failures. Its
// methods are safe for concurrent use; Report never blocks.
type SMTP struct {
	cfg  SMTPConfig
	host string
	from string   // the bare address, for MAIL FROM
	to   []string // the bare addresses, for RCPT TO
	tls  *tls.Config
	b    *batcher
}

// Validate reports the first invalid field. Zero fields are valid, except
// Addr, From and To.
func (cfg SMTPConfig) Validate() error {
	_, err := cfg.check()
	return err
}

// check validates cfg and returns the SMTP reporter it makes, without its
// batcher.
func (cfg SMTPConfig) check() (*SMTP, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	switch {
	case cfg.Addr == "":
		return nil, errors.New("report: SMTPConfig.Addr is required (host:port)")
	case err != nil || host == "":
		return nil, fmt.Errorf("report: SMTPConfig.Addr %q is not host:port", cfg.Addr)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("report: SMTPConfig.Timeout %v is negative", cfg.Timeout)
	case cfg.Password != "" && cfg.User == "":
		return nil, errors.New("report: SMTPConfig.Password without a User")
	case strings.ContainsAny(cfg.Source, "\r\n"):
		return nil, errors.New("report: SMTPConfig.Source holds a line break")
	case cfg.User != "" && cfg.NoStartTLS && !loopback(host):
		return nil, fmt.Errorf("report: SMTPConfig.User with NoStartTLS would send the password in the clear to %s: only a relay on localhost may do without STARTTLS", host)
	}
	s := &SMTP{cfg: cfg, host: host}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("report: SMTPConfig.From %q: %v", cfg.From, err)
	}
	s.from = from.Address
	if len(cfg.To) == 0 {
		return nil, errors.New("report: SMTPConfig.To needs at least one address")
	}
	for i, t := range cfg.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("report: SMTPConfig.To[%d] %q: %v", i, t, err)
		}
		s.to = append(s.to, a.Address)
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultSMTPBatch
	}
	if _, err := newLimits("SMTPConfig", cfg.Queue, cfg.Batch, cfg.Interval, DefaultSMTPInterval, cfg.Retries, cfg.Backoff); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	s.cfg = cfg
	if cfg.TLS != nil {
		s.tls = cfg.TLS.Clone()
	} else {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.tls.ServerName == "" {
		s.tls.ServerName = host
	}
	return s, nil
}

// NewSMTP checks cfg and starts an SMTP reporter, whose goroutine runs
// until Close.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	s, err := cfg.check()
	if err != nil {
		return nil, err
	}
	c := s.cfg
	lim, _ := newLimits("SMTPConfig", c.Queue, c.Batch, c.Interval, DefaultSMTPInterval, c.Retries, c.Backoff)
	s.b = newBatcher(lim, c.Source, s.send, c.Logger)
	return s, nil
}

// Report queues f for the next e-mail, or drops and counts it when the
// queue is full or the reporter closed. It never blocks.
func (s *SMTP) Report(f actor.Failure) { s.b.report(f) }

// Close sends what is queued, within ctx's deadline (DefaultCloseTimeout
// when it has none), then stops. An e-mail still being sent at the
// deadline is abandoned. It returns ErrClosed when called again.
func (s *SMTP) Close(ctx context.Context) error { return s.b.close(ctx) }

// Stats returns the reporter's counters.
func (s *SMTP) Stats() Stats { return s.b.stats() }

// send e-mails one batch.
func (s *SMTP) send(ctx context.Context, b *Batch) error {
	msg, err := s.message(b)
	if err != nil {
		return permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	// The whole conversation is bounded by ctx: its deadline on the
	// socket, and its end (Close gave up) closes the socket.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		_ = conn.Close()
		return classify(err)
	}
	defer c.Close()
	if err := s.converse(c, msg); err != nil {
		return classify(err)
	}
	return nil
}

// converse runs the SMTP conversation on a connected client.
func (s *SMTP) converse(c *smtp.Client, msg []byte) error {
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if !s.cfg.NoStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return permanent(fmt.Errorf("report: %s does not offer STARTTLS (set NoStartTLS, starttls: false, only for a local relay)", s.cfg.Addr))
		}
		if err := c.StartTLS(s.tls); err != nil {
			return fmt.Errorf("report: STARTTLS with %s: %w", s.cfg.Addr, err)
		}
	}
	if s.cfg.User != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.User, s.cfg.Password, s.host)); err != nil {
			return fmt.Errorf("report: AUTH PLAIN as %s: %w", s.cfg.User, err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return err
	}
	for _, to := range s.to {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// classify marks the server's permanent (5xx) answers as not worth a
// retry; its transient ones (4xx) and network errors are.
func classify(err error) error {
	var pe *permanentError
	if errors.As(err, &pe) {
		return err
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return permanent(err)
	}
	return err
}

// Subject returns the subject of the e-mail of b: "[guild] 3 failures on
// gate1 (1.1.1)".
func Subject(b *Batch) string {
	n := len(b.Failures)
	what := "failures"
	if n == 1 {
		what = "failure"
	}
	var nodes []string
	for _, e := range b.Failures {
		if len(nodes) < 3 && !contains(nodes, e.Node) {
			nodes = append(nodes, e.Node)
		}
	}
	on := strings.Join(nodes, ", ")
	if b.Source != "" {
		on = b.Source + " (" + on + ")"
	}
	subject := fmt.Sprintf("[guild] %d %s on %s", n, what, on)
	if b.Dropped > 0 {
		subject += fmt.Sprintf(", %d more dropped", b.Dropped)
	}
	return subject
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// message builds the e-mail of b: headers, then a quoted-printable text
// body.
func (s *SMTP) message(b *Batch) ([]byte, error) {
	var m bytes.Buffer
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	hdr := func(k, v string) { fmt.Fprintf(&m, "%s: %s\r\n", k, v) }
	hdr("From", s.cfg.From)
	hdr("To", strings.Join(s.cfg.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", Subject(b)))
	hdr("Date", b.Sent.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id)+"@guild.report>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	m.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&m)
	if _, err := qp.Write([]byte(body(b))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return m.Bytes(), nil
}

// body is the e-mail's text.
func body(b *Batch) string {
	var t strings.Builder
	if b.Source != "" {
		fmt.Fprintf(&t, "Source: %s\n", b.Source)
	}
	fmt.Fprintf(&t, "Sent: %s\n", b.Sent.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&t, "Failures: %d\n", len(b.Failures))
	fmt.Fprintf(&t, "Dropped since the previous report: %d\n", b.Dropped)
	for i, e := range b.Failures {
		fmt.Fprintf(&t, "\n--- %d: %s at %s\n", i+1, e.Kind, e.Time.UTC().Format(time.RFC3339Nano))
		fmt.Fprintf(&t, "Node: %s\n", e.Node)
		if e.PID != "" {
			fmt.Fprintf(&t, "Actor: %s\n", e.PID)
		}
		if len(e.Names) > 0 {
			fmt.Fprintf(&t, "Names: %s\n", strings.Join(e.Names, ", "))
		}
		if e.Parent != "" {
			fmt.Fprintf(&t, "Escalated to: %s\n", e.Parent)
		}
		fmt.Fprintf(&t, "Where: %s\n", e.Where)
		if e.MessageType != "" {
			fmt.Fprintf(&t, "Message type: %s\n", e.MessageType)
		}
		fmt.Fprintf(&t, "Reason: %s\n", e.Reason)
		if e.Stack != "" {
			fmt.Fprintf(&t, "Stack:\n%s\n", e.Stack)
		}
	}
	return t.String()
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
