package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdmin: admin.listen is every node's dashboard address unless the
// node has its own; a listener anywhere turns the agents on; the token
// comes from the file, a token file or the environment.
func TestAdmin(t *testing.T) {
	file := `
admin: {token: 0123456789abcdef}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, admin: {listen: "127.0.0.1:9090"}}
  b: {addr: 1.2.1}
`
	c, err := Parse([]byte(file), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AdminOn() || c.AdminListen("a") != "127.0.0.1:9090" || c.AdminListen("b") != "" {
		t.Errorf("AdminOn %v, AdminListen a %q, b %q", c.AdminOn(), c.AdminListen("a"), c.AdminListen("b"))
	}
	if tok, err := c.AdminToken(); err != nil || tok != "0123456789abcdef" {
		t.Errorf("AdminToken = %q, %v", tok, err)
	}
	c, err = Parse([]byte(file), []string{"GUILD_ADMIN_TOKEN=from-the-environment", "GUILD_ADMIN_LISTEN=:9091", "GUILD_NODES_A_ADMIN_LISTEN=:9092"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := c.AdminToken(); tok != "from-the-environment" || c.AdminListen("a") != ":9092" || c.AdminListen("b") != ":9091" {
		t.Errorf("overrides: token %q, a %q, b %q", tok, c.AdminListen("a"), c.AdminListen("b"))
	}
	c, err = Parse([]byte("nodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminOn() || c.AdminListen("a") != "" {
		t.Errorf("without admin: on %v, listen %q", c.AdminOn(), c.AdminListen("a"))
	}

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(" 0123456789abcdef-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte("admin: {listen: ':0', token_file: "+tokenFile+"}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles("a"); err != nil {
		t.Fatal(err)
	}
	if tok, err := c.AdminToken(); err != nil || tok != "0123456789abcdef-from-a-file" {
		t.Errorf("AdminToken from a file = %q, %v", tok, err)
	}
	missing := filepath.Join(dir, "nope")
	c, err = Parse([]byte("admin: {listen: ':0', token_file: "+missing+"}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles("a"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "admin.token_file: tokenauth: open "+missing) {
		t.Errorf("CheckFiles with a missing token file: %v", err)
	}
}

func TestAdminValidation(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"bad address", "admin: {listen: '9090'}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			`admin.listen: "9090" is not host:port`},
		{"empty node section", "nodes: {a: {addr: 1.1.1, master: 127.0.0.1:0, admin: {}}}",
			"nodes.a.admin.listen: required"},
		{"node clash", "nodes: {a: {addr: 1.1.1, master: 127.0.0.1:2379, admin: {listen: '127.0.0.1:2379'}}}",
			"nodes.a.admin.listen: 127.0.0.1:2379 is also nodes.a.master"},
		{"short token", "admin: {listen: ':9090', token: short}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"admin.token: 5 bytes, fewer than 16"},
		{"token and file", "admin: {listen: ':9090', token: 0123456789abcdef, token_file: f}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"admin: token and token_file exclude each other"},
		{"token without listener", "admin: {token: 0123456789abcdef}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"admin: a token guards the admin dashboards, but no node serves one"},
		{"unknown key", "admin: {listn: ':9090'}\nnodes: {a: {addr: 1.1.1, master: 127.0.0.1:0}}",
			"admin.listn: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), nil, nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want %q", err, tc.want)
			}
		})
	}
}
