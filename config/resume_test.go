package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/tokenauth"
)

// TestGatewayResumeKey: the key that seals session records into resume
// tokens comes from resume_key, from the environment
// (GUILD_NODES_<NODE>_GATEWAY_RESUME_KEY) or from resume_key_file, read by
// CheckFiles and ResumeSecret; a short key, both keys, or a key without
// limits.resume_window are refused, and no error repeats the secret.
func TestGatewayResumeKey(t *testing.T) {
	if tokenauth.MinSecret != gate.MinResumeKeyLen {
		t.Fatalf("config checks resume_key against tokenauth.MinSecret (%d), gate wants %d", tokenauth.MinSecret, gate.MinResumeKeyLen)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "resume.key")
	if err := os.WriteFile(keyFile, []byte("  0123456789abcdef-from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const win = "limits: {resume_window: 30s}"
	secret := func(t *testing.T, gw string, env ...string) string {
		t.Helper()
		c, err := Parse([]byte(gatewayFile(gw)), env, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckFiles("g1"); err != nil {
			t.Fatalf("CheckFiles: %v", err)
		}
		s, err := c.Nodes["g1"].Gateway.ResumeSecret()
		if err != nil {
			t.Fatalf("ResumeSecret: %v", err)
		}
		return s
	}
	if s := secret(t, "{tcp: 127.0.0.1:0, "+win+"}"); s != "" {
		t.Errorf("no key: ResumeSecret %q, want none", s)
	}
	if s := secret(t, "{tcp: 127.0.0.1:0, resume_key: 0123456789abcdef, "+win+"}"); s != "0123456789abcdef" {
		t.Errorf("resume_key: ResumeSecret %q", s)
	}
	if s := secret(t, "{tcp: 127.0.0.1:0, resume_key_file: "+keyFile+", "+win+"}"); s != "0123456789abcdef-from-the-file" {
		t.Errorf("resume_key_file: ResumeSecret %q, want the file's contents without the white space", s)
	}
	if s := secret(t, "{tcp: 127.0.0.1:0, "+win+"}", "GUILD_NODES_G1_GATEWAY_RESUME_KEY=0123456789abcdef-from-env"); s != "0123456789abcdef-from-env" {
		t.Errorf("GUILD_NODES_G1_GATEWAY_RESUME_KEY: ResumeSecret %q", s)
	}
	for _, tc := range []struct{ name, gw, want string }{
		{"short key", "{tcp: 127.0.0.1:0, resume_key: sekrit, " + win + "}", "nodes.g1.gateway.resume_key: 6 bytes, fewer than 16"},
		{"key and file", "{tcp: 127.0.0.1:0, resume_key: sekrit0123456789, resume_key_file: " + keyFile + ", " + win + "}", "nodes.g1.gateway: resume_key and resume_key_file exclude each other"},
		{"no window", "{tcp: 127.0.0.1:0, resume_key: sekrit0123456789}", "nodes.g1.gateway: a resume key, but no limits.resume_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(gatewayFile(tc.gw)), nil, nil)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "\n") != 0 {
				t.Fatalf("error:\n%v\nwant one problem, %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}
