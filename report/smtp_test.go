package report_test

import (
	"crypto/tls"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/report"
)

// readMail parses an e-mail's subject and decoded body.
func readMail(t *testing.T, data string) (subject, body string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("the e-mail does not parse: %v\n%s", err, data)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("encoding %q", m.Header.Get("Content-Transfer-Encoding"))
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return subject, strings.ReplaceAll(string(b), "\r\n", "\n")
}

func TestSMTPWithSTARTTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	ms := startMailServer(t, &cert, "ops@example.com", "pa55word")
	s, err := report.NewSMTP(report.SMTPConfig{
		Addr: ms.addr, From: "guild <guild@example.com>", To: []string{"ops@example.com", "Dev <dev@example.com>"},
		User: "ops@example.com", Password: "pa55word", TLS: &tls.Config{RootCAs: pool},
		Source: "world-1", Interval: 10 * time.Millisecond, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, s, resume)
	pid := panicker(t, n, actor.WithName(".world"))
	for range 3 {
		_ = n.Send(pid, move{Secret: "hunter2"})
	}
	if v, err := n.Call(ctxTimeout(t, waitTimeout), pid, "count"); err != nil || v != 3 {
		t.Fatalf("count %v, %v", v, err)
	}
	if err := s.Close(ctxTimeout(t, waitTimeout)); err != nil { // flushes
		t.Fatal(err)
	}
	msgs := ms.messages()
	if len(msgs) == 0 {
		t.Fatalf("no e-mail; stats %+v", s.Stats())
	}
	var body strings.Builder
	for _, m := range msgs {
		if !m.tls || !m.authed || m.from != "guild@example.com" || strings.Join(m.to, ",") != "ops@example.com,dev@example.com" {
			t.Errorf("e-mail tls=%v authed=%v from %q to %q", m.tls, m.authed, m.from, m.to)
		}
		subject, b := readMail(t, m.data)
		if !strings.HasPrefix(subject, "[guild] ") || !strings.Contains(subject, "on world-1 (1.2.3)") || !strings.Contains(subject, "failure") {
			t.Errorf("subject %q", subject)
		}
		body.WriteString(b)
	}
	if !strings.Contains(msgs[0].data, "Subject:") {
		t.Errorf("no subject:\n%s", msgs[0].data)
	}
	for _, want := range []string{"Node: 1.2.3", "Actor: " + pid.String(), "Names: .world", "Where: receive",
		"Message type: report_test.move", "Reason: bad move H", "Stack:\ngoroutine", "report_test.panicker"} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("the e-mails lack %q:\n%s", want, body.String())
		}
	}
	if strings.Contains(body.String(), "hunter2") {
		t.Error("an e-mail carries the message's contents")
	}
	if st := s.Stats(); st.Delivered != 3 || st.Queued != 3 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSMTPRefusesToSendInTheClear(t *testing.T) {
	ms := startMailServer(t, nil, "", "") // offers no STARTTLS
	s, err := report.NewSMTP(report.SMTPConfig{Addr: ms.addr, From: "guild@example.com", To: []string{"ops@example.com"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s.Report(actor.Failure{Reason: "x"})
	await.True(t, waitTimeout, "the delivery to fail", func() bool { return s.Stats().Failed == 1 })
	if st := s.Stats(); st.Attempts != 1 {
		t.Errorf("stats %+v: a server without STARTTLS was tried again", st)
	}
	if err := s.Close(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if len(ms.messages()) != 0 {
		t.Fatal("an e-mail went in the clear")
	}

	// A local relay, explicitly allowed.
	relay, err := report.NewSMTP(report.SMTPConfig{Addr: ms.addr, From: "guild@example.com", To: []string{"ops@example.com"}, NoStartTLS: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	relay.Report(actor.Failure{Reason: "via the relay"})
	if err := relay.Close(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if msgs := ms.messages(); len(msgs) != 1 || msgs[0].tls || !strings.Contains(msgs[0].data, "via the relay") {
		t.Fatalf("relay e-mails %+v", msgs)
	}
}

func TestSMTPBadPasswordIsNotRetried(t *testing.T) {
	cert, pool := selfSigned(t)
	ms := startMailServer(t, &cert, "ops", "right")
	s, err := report.NewSMTP(report.SMTPConfig{Addr: ms.addr, From: "g@example.com", To: []string{"o@example.com"},
		User: "ops", Password: "wrong", TLS: &tls.Config{RootCAs: pool}, Backoff: time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s.Report(actor.Failure{Reason: "x"})
	await.True(t, waitTimeout, "the delivery to fail", func() bool { return s.Stats().Failed == 1 })
	if st := s.Stats(); st.Attempts != 1 {
		t.Errorf("stats %+v: a 535 was retried", st)
	}
	if err := s.Close(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
}

func TestSMTPConfigErrors(t *testing.T) {
	ok := report.SMTPConfig{Addr: "127.0.0.1:25", From: "g@example.com", To: []string{"o@example.com"}}
	for _, tc := range []struct {
		edit func(*report.SMTPConfig)
		want string
	}{
		{func(c *report.SMTPConfig) { c.Addr = "" }, "Addr is required"},
		{func(c *report.SMTPConfig) { c.Addr = "mail.example.com" }, "is not host:port"},
		{func(c *report.SMTPConfig) { c.From = "not an address" }, "SMTPConfig.From"},
		{func(c *report.SMTPConfig) { c.To = nil }, "at least one address"},
		{func(c *report.SMTPConfig) { c.To = []string{"o@example.com", "bad"} }, "SMTPConfig.To[1]"},
		{func(c *report.SMTPConfig) { c.Password = "p" }, "Password without a User"},
		{func(c *report.SMTPConfig) { c.Source = "a\r\nBcc: x@example.com" }, "line break"},
		{func(c *report.SMTPConfig) { c.Batch = -2 }, "Batch -2 is negative"},
		{func(c *report.SMTPConfig) { c.Addr, c.User, c.NoStartTLS = "mail.example.com:25", "u", true }, "in the clear"},
	} {
		cfg := ok
		tc.edit(&cfg)
		s, err := report.NewSMTP(cfg)
		if err == nil {
			_ = s.Close(ctxTimeout(t, waitTimeout))
			t.Errorf("%+v: no error, want %q", cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", cfg, err, tc.want)
		}
	}
}
