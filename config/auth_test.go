package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gatewayFile is a one-node file whose gateway section is gw (a YAML flow
// mapping).
func gatewayFile(gw string) string {
	return "nodes:\n  g1:\n    addr: 1.1.1\n    master: 127.0.0.1:0\n    gateway: " + gw + "\n"
}

// TestGatewayWSOrigins: ws_origins is read as a list of patterns.
func TestGatewayWSOrigins(t *testing.T) {
	c, err := Parse([]byte(gatewayFile("{ws: 127.0.0.1:0, ws_origins: [https://game.example.com, '*.example.org']}")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Nodes["g1"].Gateway.WSOrigins; len(o) != 2 || o[1] != "*.example.org" {
		t.Errorf("ws_origins %q", o)
	}
}

func TestGatewayMQTTWebSocket(t *testing.T) {
	c, err := Parse([]byte(gatewayFile("{mqtt: 127.0.0.1:1884, mqtt_ws: 127.0.0.1:8083}")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Nodes["g1"].Gateway
	if g.MQTTWS != "127.0.0.1:8083" || g.MQTTWSPath != DefaultMQTTWSPath || g.Auth != nil {
		t.Errorf("gateway %+v", g)
	}
	// mqtt_ws alone is a listener.
	c, err = Parse([]byte(gatewayFile("{mqtt_ws: 127.0.0.1:0, mqtt_ws_path: /broker}")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Nodes["g1"].Gateway; g.MQTTWSPath != "/broker" {
		t.Errorf("mqtt_ws_path %q", g.MQTTWSPath)
	}
	// Overrides: the longer keys win (MQTT_WS_PATH is not MQTT_WS's).
	env := []string{
		"GUILD_NODES_G1_GATEWAY_MQTT_WS=127.0.0.1:9083",
		"GUILD_NODES_G1_GATEWAY_MQTT_WS_PATH=/m",
		"GUILD_NODES_G1_GATEWAY_MQTT=127.0.0.1:9884",
	}
	c, err = Parse([]byte(gatewayFile("{tcp: 127.0.0.1:0}")), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Nodes["g1"].Gateway; g.MQTTWS != "127.0.0.1:9083" || g.MQTTWSPath != "/m" || g.MQTT != "127.0.0.1:9884" {
		t.Errorf("overridden gateway %+v", g)
	}
}

func TestGatewayAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokens := write("tokens", "# token user\ngood-ann ann\n")
	secretFile := write("secret", "0123456789abcdef0123456789abcdef\n")

	for _, gw := range []string{
		"{mqtt: 127.0.0.1:0, auth: {tokens_file: " + tokens + "}}",
		"{mqtt: 127.0.0.1:0, auth: {jwt_secret: 0123456789abcdef}}",
		"{mqtt: 127.0.0.1:0, auth: {jwt_secret_file: " + secretFile + "}}",
	} {
		if _, err := Parse([]byte(gatewayFile(gw)), nil, nil); err != nil {
			t.Errorf("%s: %v", gw, err)
		}
	}
	// The auth section from the environment alone.
	c, err := Parse([]byte(gatewayFile("{mqtt: 127.0.0.1:0}")), []string{"GUILD_NODES_G1_GATEWAY_AUTH_JWT_SECRET=from-the-environment"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Nodes["g1"].Gateway.Auth; a == nil || a.JWTSecret != "from-the-environment" {
		t.Errorf("auth from GUILD_: %+v", a)
	}
	c, err = Parse([]byte(gatewayFile("{mqtt: 127.0.0.1:0}")), []string{"GUILD_NODES_G1_GATEWAY_AUTH_TOKENS_FILE=" + tokens}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Nodes["g1"].Gateway.Auth; a == nil || a.TokensFile != tokens {
		t.Errorf("auth from GUILD_: %+v", a)
	}

	for _, tc := range []struct{ name, gw, want string }{
		{"empty section", "{tcp: 127.0.0.1:0, auth: {}}", "nodes.g1.gateway.auth: give one of tokens_file, jwt_secret and jwt_secret_file"},
		{"both set", "{tcp: 127.0.0.1:0, auth: {tokens_file: " + tokens + ", jwt_secret: 0123456789abcdef}}",
			"nodes.g1.gateway.auth: tokens_file and jwt_secret exclude each other"},
		{"secret and its file", "{tcp: 127.0.0.1:0, auth: {jwt_secret: 0123456789abcdef, jwt_secret_file: " + secretFile + "}}",
			"nodes.g1.gateway.auth: jwt_secret and jwt_secret_file exclude each other"},
		{"short secret", "{tcp: 127.0.0.1:0, auth: {jwt_secret: dev}}",
			"nodes.g1.gateway.auth.jwt_secret: 3 bytes, fewer than 16"},
		{"unknown auth key", "{tcp: 127.0.0.1:0, auth: {secret: x}}",
			"nodes.g1.gateway.auth.secret: unknown key (the keys here are jwt_secret, jwt_secret_file, tokens_file)"},
		{"bad mqtt_ws", "{mqtt_ws: nowhere}", `nodes.g1.gateway.mqtt_ws: "nowhere" is not host:port`},
		{"bad mqtt_ws_path", "{mqtt_ws: 127.0.0.1:0, mqtt_ws_path: mqtt}", `nodes.g1.gateway.mqtt_ws_path: "mqtt" does not start with /`},
		{"mqtt_ws clash", "{ws: 127.0.0.1:8083, mqtt_ws: 127.0.0.1:8083}", "nodes.g1.gateway.mqtt_ws: 127.0.0.1:8083 is also nodes.g1.gateway.ws"},
		{"bad ws_origins", "{ws: 127.0.0.1:0, ws_origins: [https://game.example.com, https://x.org/page]}",
			`nodes.g1.gateway.ws_origins[1]: origin pattern "https://x.org/page": an origin is scheme://host[:port], with no path, query or user`},
		{"no listener", "{auth: {jwt_secret: 0123456789abcdef}}", "no listener: give at least one of tcp, ws, kcp, mqtt and mqtt_ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(gatewayFile(tc.gw)), nil, nil)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error:\n%v\nwant one problem, %q", err, tc.want)
			}
		})
	}
	// A secret is never repeated in an error.
	_, err = Parse([]byte(gatewayFile("{tcp: 127.0.0.1:0, auth: {jwt_secret: sekrit}}")), nil, nil)
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("short secret: %v", err)
	}
}

// TestCheckFiles: Load reads no file that a node's settings name, since
// the file may be on that node's machine only; CheckFiles reads the
// files of one node and says what is wrong with them, naming the field.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("tokens", "good-ann ann\n")
	secret := write("secret", "0123456789abcdef0123456789abcdef\n")
	bad := write("bad", "one two three\n")
	empty := write("empty", "# nobody\n")
	short := write("short", "tiny\n")
	missing := filepath.Join(dir, "nope")
	for _, tc := range []struct{ name, auth, want string }{
		{"tokens file", "{tokens_file: " + good + "}", ""},
		{"secret file", "{jwt_secret_file: " + secret + "}", ""},
		{"secret", "{jwt_secret: 0123456789abcdef}", ""},
		{"missing tokens file", "{tokens_file: " + missing + "}", "nodes.g1.gateway.auth.tokens_file: tokenauth: open " + missing},
		{"bad tokens file", "{tokens_file: " + bad + "}", "nodes.g1.gateway.auth.tokens_file: " + bad + `: line 1: want "token user", got 3 fields`},
		{"empty tokens file", "{tokens_file: " + empty + "}", "nodes.g1.gateway.auth.tokens_file: " + empty + " has no token"},
		{"missing secret file", "{jwt_secret_file: " + missing + "}", "nodes.g1.gateway.auth.jwt_secret_file: tokenauth: open " + missing},
		{"short secret file", "{jwt_secret_file: " + short + "}", "nodes.g1.gateway.auth.jwt_secret_file: tokenauth: " + short + ": the secret has 4 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := gatewayFile("{tcp: 127.0.0.1:0, auth: "+tc.auth+"}") + "  other: {addr: 1.2.1}\n"
			c, err := Parse([]byte(file), nil, nil)
			if err != nil {
				t.Fatalf("Parse reads no file, yet: %v", err)
			}
			if err := c.CheckFiles("other"); err != nil {
				t.Errorf("CheckFiles of a node without files: %v", err)
			}
			err = c.CheckFiles("g1")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckFiles: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckFiles: %v, want %q (ErrInvalid)", err, tc.want)
			}
		})
	}
}

// TestTrustedProxies: limits.trusted_proxies takes addresses and prefixes,
// as prefixes, and names a bad entry.
func TestTrustedProxies(t *testing.T) {
	c, err := Parse([]byte(gatewayFile("{ws: 127.0.0.1:0, limits: {trusted_proxies: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\", 10.1.2.3/8]}}")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Nodes["g1"].Gateway.Limits.Proxies()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")}
	if !slices.Equal(ps, want) {
		t.Errorf("Proxies() = %v, want %v", ps, want)
	}
	_, err = Parse([]byte(gatewayFile("{ws: 127.0.0.1:0, limits: {trusted_proxies: [proxy.example.com]}}")), nil, nil)
	if err == nil || !strings.Contains(err.Error(), `nodes.g1.gateway.limits.trusted_proxies: "proxy.example.com" is neither an address nor a prefix`) {
		t.Errorf("a host name as a trusted proxy: %v", err)
	}
}
