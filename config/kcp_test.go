package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gatekcp "github.com/guildkit/guild/gate/kcp"
	"github.com/guildkit/guild/gate/tokenauth"
)

// TestGatewayKCPKey: the KCP listener's secret comes from kcp_key, from
// the environment (GUILD_NODES_<NODE>_GATEWAY_KCP_KEY) or from
// kcp_key_file, read by CheckFiles and KCPSecret; a short key, both keys,
// or a key without a kcp listener are refused, and no error repeats the
// secret.
func TestGatewayKCPKey(t *testing.T) {
	if tokenauth.MinSecret != gatekcp.MinKeyLen {
		t.Fatalf("config checks kcp_key against tokenauth.MinSecret (%d), gate/kcp wants %d", tokenauth.MinSecret, gatekcp.MinKeyLen)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("kcp.key", "  0123456789abcdef-from-the-file\n")
	short := write("short", "sekrit\n")
	missing := filepath.Join(dir, "nope")

	secret := func(t *testing.T, gw string, env ...string) string {
		t.Helper()
		c, err := Parse([]byte(gatewayFile(gw)), env, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckFiles("g1"); err != nil {
			t.Fatalf("CheckFiles: %v", err)
		}
		s, err := c.Nodes["g1"].Gateway.KCPSecret()
		if err != nil {
			t.Fatalf("KCPSecret: %v", err)
		}
		return s
	}
	if s := secret(t, "{kcp: 127.0.0.1:0}"); s != "" {
		t.Errorf("no key: KCPSecret %q, want none", s)
	}
	if s := secret(t, "{kcp: 127.0.0.1:0, kcp_key: 0123456789abcdef}"); s != "0123456789abcdef" {
		t.Errorf("kcp_key: KCPSecret %q", s)
	}
	if s := secret(t, "{kcp: 127.0.0.1:0, kcp_key_file: "+keyFile+"}"); s != "0123456789abcdef-from-the-file" {
		t.Errorf("kcp_key_file: KCPSecret %q, want the file's contents without the white space", s)
	}
	if s := secret(t, "{kcp: 127.0.0.1:0}", "GUILD_NODES_G1_GATEWAY_KCP_KEY=0123456789abcdef-from-env"); s != "0123456789abcdef-from-env" {
		t.Errorf("GUILD_NODES_G1_GATEWAY_KCP_KEY: KCPSecret %q", s)
	}
	if s := secret(t, "{kcp: 127.0.0.1:0}", "GUILD_NODES_G1_GATEWAY_KCP_KEY_FILE="+keyFile); s != "0123456789abcdef-from-the-file" {
		t.Errorf("GUILD_NODES_G1_GATEWAY_KCP_KEY_FILE: KCPSecret %q", s)
	}

	for _, tc := range []struct{ name, gw, want string }{
		{"short key", "{kcp: 127.0.0.1:0, kcp_key: sekrit}", "nodes.g1.gateway.kcp_key: 6 bytes, fewer than 16"},
		{"white space", "{kcp: 127.0.0.1:0, kcp_key: ' sekrit0123456789'}", "nodes.g1.gateway.kcp_key: white space around the key"},
		{"key and file", "{kcp: 127.0.0.1:0, kcp_key: sekrit0123456789, kcp_key_file: " + keyFile + "}", "nodes.g1.gateway: kcp_key and kcp_key_file exclude each other"},
		{"no kcp listener", "{tcp: 127.0.0.1:0, kcp_key: sekrit0123456789}", "nodes.g1.gateway: a KCP key, but no kcp listener: set kcp"},
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
	// The file is read by CheckFiles (on the node's machine), not Parse.
	for _, tc := range []struct{ name, file, want string }{
		{"missing file", missing, "nodes.g1.gateway.kcp_key_file: tokenauth: open " + missing},
		{"short file", short, "nodes.g1.gateway.kcp_key_file: tokenauth: " + short + ": the secret has 6 bytes, fewer than 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(gatewayFile("{kcp: 127.0.0.1:0, kcp_key_file: "+tc.file+"}")), nil, nil)
			if err != nil {
				t.Fatalf("Parse reads no file, yet: %v", err)
			}
			err = c.CheckFiles("g1")
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckFiles: %v, want %q (ErrInvalid)", err, tc.want)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}
