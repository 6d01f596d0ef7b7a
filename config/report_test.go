package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reportFile is a one-node file with the report section r (YAML).
func reportFile(r string) string {
	return "nodes:\n  g1: {addr: 1.1.1, master: 127.0.0.1:0}\nreport:\n" + r
}

func TestReportSection(t *testing.T) {
	c, err := Parse([]byte(reportFile(`
  webhook:
    url: https://hooks.example.com/guild
    headers: {Authorization: Bearer from-file}
    batch: 20
    interval: 5s
  smtp:
    addr: smtp.example.com:587
    from: guild@example.com
    to: [ops@example.com, dev@example.com]
    user: guild
    password: pw
`)), []string{
		"GUILD_REPORT_WEBHOOK_HEADERS_AUTHORIZATION=Bearer from-env",
		"GUILD_REPORT_SMTP_PASSWORD=pw-from-env",
		"GUILD_REPORT_SMTP_STARTTLS=true",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Report.Webhook.WebhookConfig()
	if w.URL != "https://hooks.example.com/guild" || w.Headers["Authorization"] != "Bearer from-env" || w.Batch != 20 || w.Interval != 5*time.Second {
		t.Errorf("webhook %+v", w)
	}
	m := c.Report.SMTP.SMTPConfig()
	if m.Addr != "smtp.example.com:587" || len(m.To) != 2 || m.User != "guild" || m.Password != "pw-from-env" || m.NoStartTLS {
		t.Errorf("smtp %+v", m)
	}
	c, err = Parse([]byte(reportFile("  smtp: {addr: 127.0.0.1:25, from: g@example.com, to: [o@example.com], starttls: false}\n")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Report.SMTP.SMTPConfig().NoStartTLS || c.Report.Webhook != nil {
		t.Errorf("starttls: false gives %+v", c.Report)
	}
}

func TestReportSectionErrors(t *testing.T) {
	for _, tc := range []struct{ section, want string }{
		{"  webhook: {headers: {A: b}}\n", "report.webhook: url is required"},
		{"  webhook: {url: ftp://example.com}\n", `report.webhook: url "ftp://example.com" is not http or https`},
		{"  webhook: {url: http://x, queue: -1}\n", "report.webhook: queue -1 is negative"},
		{"  webhook: {url: http://x, headers: {'a b': c}}\n", `report.webhook: headers: "a b" is not a header name`},
		{"  webhook: {url: http://x, rate: 5}\n", "report.webhook.rate: unknown key"},
		{"  smtp: {from: g@example.com, to: [o@example.com]}\n", "report.smtp: addr is required"},
		{"  smtp: {addr: 127.0.0.1:25, from: g@example.com}\n", "report.smtp: to needs at least one address"},
		{"  smtp: {addr: 127.0.0.1:25, from: nobody, to: [o@example.com]}\n", `report.smtp: from "nobody"`},
		{"  smtp: {addr: 127.0.0.1:25, from: g@example.com, to: [o@example.com], user: u, password: p, password_file: f}\n", "password and password_file exclude each other"},
		{"  smtp: {addr: 127.0.0.1:25, from: g@example.com, to: [o@example.com], password_file: f}\n", "report.smtp.password_file: a password without a user"},
		{"  smtp: {addr: mail.example.com:25, from: g@example.com, to: [o@example.com], user: u, password: p, starttls: false}\n", "in the clear"},
		{"  smtp: {addr: 127.0.0.1:25, from: g@example.com, to: [o@example.com], starttls: maybe}\n", "report.smtp.starttls: \"maybe\" is not true or false"},
	} {
		_, err := Parse([]byte(reportFile(tc.section)), nil, nil)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", strings.TrimSpace(tc.section), err, tc.want)
		}
	}
	// A header not in the file cannot be added from the environment.
	_, err := Parse([]byte(reportFile("  webhook: {url: http://x}\n")), []string{"GUILD_REPORT_WEBHOOK_HEADERS_X=1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "GUILD_REPORT_WEBHOOK_HEADERS_X: matches no field") {
		t.Errorf("an unknown header variable: %v", err)
	}
}

func TestReportFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(reportFile("  smtp: {addr: 127.0.0.1:25, from: g@example.com, to: [o@example.com], user: u, password_file: "+pw+", ca_file: "+filepath.Join(dir, "none.pem")+"}\n")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckFiles("g1")
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "report.smtp.ca_file") || strings.Contains(err.Error(), "password_file") {
		t.Errorf("CheckFiles: %v, want the missing ca_file only", err)
	}
	if s, err := ReadSecretFile(pw); err != nil || s != "s3cret" {
		t.Errorf("ReadSecretFile = %q, %v", s, err)
	}
}
