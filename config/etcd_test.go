package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guildkit/guild/internal/testpki"
)

// etcdFile writes a cluster file whose cluster.etcd section is etcd
// (YAML, indented by four spaces) with one node, and returns its path.
func etcdFile(t *testing.T, etcd string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	body := "cluster:\n  etcd:\n" + etcd + "nodes:\n  a: {addr: 1.1.1}\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFile writes body to a new file of dir and returns its path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEtcdTLSAndUser: cluster.etcd.tls and a user whose password is in a
// file give the etcd client its TLS configuration (the CA, the client
// certificate, the server name) and credentials.
func TestEtcdTLSAndUser(t *testing.T) {
	pki := testpki.New(t, "guild-node")
	pw := writeFile(t, t.TempDir(), "etcd-password", "  s3cret-from-a-file \n")
	path := etcdFile(t, `    endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
    tls:
      ca_file: `+pki.CAFile+`
      cert_file: `+pki.ClientCert+`
      key_file: `+pki.ClientKey+`
      server_name: etcd.internal
    username: guild
    password_file: `+pw+"\n")
	c, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles("a"); err != nil {
		t.Fatal(err)
	}
	ec, err := c.EtcdConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(ec.Endpoints) != 2 || ec.Username != "guild" || ec.Password != "s3cret-from-a-file" {
		t.Errorf("EtcdConfig: endpoints %v, user %q, password %q", ec.Endpoints, ec.Username, ec.Password)
	}
	if ec.TLS == nil || ec.TLS.RootCAs == nil || len(ec.TLS.Certificates) != 1 || ec.TLS.ServerName != "etcd.internal" {
		t.Fatalf("EtcdConfig: TLS %+v", ec.TLS)
	}
	if err := ec.Validate(); err != nil {
		t.Errorf("the etcd client's Validate: %v", err)
	}

	// An empty tls section: TLS with the system's CAs, no certificate.
	c, err = Load(etcdFile(t, "    endpoints: [https://etcd:2379]\n    tls: {}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ec, err := c.EtcdConfig(); err != nil || ec.TLS == nil || ec.TLS.RootCAs != nil || len(ec.TLS.Certificates) != 0 || ec.Username != "" {
		t.Errorf("tls: {}: %+v, %v", ec, err)
	}
	// No tls section: no TLS configuration (https endpoints would still
	// use TLS with the system's CAs: etcd's client does so).
	c, err = Load(etcdFile(t, "    endpoints: [http://etcd:2379]\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ec, err := c.EtcdConfig(); err != nil || ec.TLS != nil {
		t.Errorf("without tls: %+v, %v", ec, err)
	}
}

// TestEtcdPasswordFromEnv: GUILD_ETCD_PASSWORD gives the password of
// cluster.etcd.username, which the file does not hold; overrides set the
// other keys as usual.
func TestEtcdPasswordFromEnv(t *testing.T) {
	path := etcdFile(t, "    endpoints: [https://etcd:2379]\n    username: guild\n")
	c, err := Load(path, []string{"GUILD_ETCD_PASSWORD=s3cret-from-env", "GUILD_CLUSTER_ETCD_TLS_SERVER_NAME=etcd.internal"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := c.EtcdConfig()
	if err != nil {
		t.Fatal(err)
	}
	if ec.Username != "guild" || ec.Password != "s3cret-from-env" || ec.TLS == nil || ec.TLS.ServerName != "etcd.internal" {
		t.Errorf("EtcdConfig: user %q, password %q, TLS %+v", ec.Username, ec.Password, ec.TLS)
	}
	// The user and the password file can come from the environment too.
	pw := writeFile(t, t.TempDir(), "pw", "from-a-file\n")
	c, err = Load(etcdFile(t, "    endpoints: [https://etcd:2379]\n"), []string{"GUILD_CLUSTER_ETCD_USERNAME=ops", "GUILD_CLUSTER_ETCD_PASSWORD_FILE=" + pw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ec, err := c.EtcdConfig(); err != nil || ec.Username != "ops" || ec.Password != "from-a-file" {
		t.Errorf("from the environment: user %q, password %q, %v", ec.Username, ec.Password, err)
	}
}

// TestEtcdSecurityValidation: each mistake in cluster.etcd's TLS and
// credentials is an error naming its field, and no error holds the
// password.
func TestEtcdSecurityValidation(t *testing.T) {
	const secret = "s3cret-never-shown"
	pw := writeFile(t, t.TempDir(), "pw", secret)
	for _, tc := range []struct {
		name, etcd string
		env        []string
		want       string
	}{
		{"cert without key", "    endpoints: [https://e:2379]\n    tls: {cert_file: c.pem}\n", nil,
			"cluster.etcd.tls: cert_file and key_file go together"},
		{"key without cert", "    endpoints: [https://e:2379]\n    tls: {key_file: k.pem}\n", nil,
			"cluster.etcd.tls: cert_file and key_file go together"},
		{"http with tls", "    endpoints: [http://e:2379]\n    tls: {}\n", nil,
			`cluster.etcd.endpoints[0]: "http://e:2379" is not https, but cluster.etcd.tls is set: write https://`},
		{"mixed schemes", "    endpoints: [https://e:2379, http://f:2379]\n", nil,
			`cluster.etcd.endpoints[1]: "http://f:2379" is not https like endpoints[0]`},
		{"password file without user", "    endpoints: [https://e:2379]\n    password_file: " + pw + "\n", nil,
			"cluster.etcd.password_file: a password without a user: set cluster.etcd.username"},
		{"env password without user", "    endpoints: [https://e:2379]\n", []string{"GUILD_ETCD_PASSWORD=" + secret},
			"GUILD_ETCD_PASSWORD: a password without a user: set cluster.etcd.username"},
		{"empty env password", "    endpoints: [https://e:2379]\n    username: guild\n", []string{"GUILD_ETCD_PASSWORD="},
			"GUILD_ETCD_PASSWORD: set but empty"},
		{"two passwords", "    endpoints: [https://e:2379]\n    username: guild\n    password_file: " + pw + "\n", []string{"GUILD_ETCD_PASSWORD=" + secret},
			"cluster.etcd.password_file: GUILD_ETCD_PASSWORD is set too: give one of them"},
		{"user without password", "    endpoints: [https://e:2379]\n    username: guild\n", nil,
			"cluster.etcd.username: no password: give password_file or the GUILD_ETCD_PASSWORD variable"},
		{"password in the file", "    endpoints: [https://e:2379]\n    username: guild\n    password: " + secret + "\n", nil,
			"cluster.etcd.password: unknown key"},
		{"password as an override", "    endpoints: [https://e:2379]\n    username: guild\n", []string{"GUILD_CLUSTER_ETCD_PASSWORD=" + secret},
			"GUILD_CLUSTER_ETCD_PASSWORD: the etcd password is no key of the cluster file: set GUILD_ETCD_PASSWORD, or cluster.etcd.password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(etcdFile(t, tc.etcd), tc.env, nil)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v\nwant %q (ErrInvalid)", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error holds the password: %v", err)
			}
		})
	}

	// The embedded etcd of a master has neither TLS nor users.
	for _, etcd := range []string{"    tls: {}\n", "    username: guild\n    password_file: " + pw + "\n"} {
		file := "cluster:\n  etcd:\n" + etcd + "nodes:\n  a: {addr: 1.1.1, master: 127.0.0.1:0}\n"
		_, err := Parse([]byte(file), nil, nil)
		if err == nil || !strings.Contains(err.Error(), "nodes.a.master: the embedded etcd serves plain http without users") {
			t.Errorf("a master with %q: %v", etcd, err)
		}
	}
}

// TestEtcdCheckFiles: Load reads none of cluster.etcd's files; CheckFiles
// reads them for every node, and EtcdConfig says the same, naming the
// field and never the password.
func TestEtcdCheckFiles(t *testing.T) {
	pki := testpki.New(t, "guild-node")
	other := testpki.New(t, "other")
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	empty := writeFile(t, dir, "empty", " \n")
	notPEM := writeFile(t, dir, "not-pem", "hello\n")
	for _, tc := range []struct{ name, etcd, want string }{
		{"missing password file", "    username: guild\n    password_file: " + missing + "\n",
			"cluster.etcd.password_file: open " + missing},
		{"empty password file", "    username: guild\n    password_file: " + empty + "\n",
			"cluster.etcd.password_file: " + empty + " is empty"},
		{"missing CA", "    tls: {ca_file: " + missing + "}\n",
			"cluster.etcd.tls.ca_file: open " + missing},
		{"CA not PEM", "    tls: {ca_file: " + notPEM + "}\n",
			"cluster.etcd.tls.ca_file: " + notPEM + " holds no PEM certificate"},
		{"missing cert", "    tls: {cert_file: " + missing + ", key_file: " + pki.ClientKey + "}\n",
			"cluster.etcd.tls.cert_file: open " + missing},
		{"missing key", "    tls: {cert_file: " + pki.ClientCert + ", key_file: " + missing + "}\n",
			"cluster.etcd.tls.key_file: open " + missing},
		{"key of another cert", "    tls: {cert_file: " + pki.ClientCert + ", key_file: " + other.ClientKey + "}\n",
			"cluster.etcd.tls: cert_file " + pki.ClientCert + " and key_file " + other.ClientKey + ": tls: private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(etcdFile(t, "    endpoints: [https://e:2379]\n"+tc.etcd), nil, nil)
			if err != nil {
				t.Fatalf("Load reads no file, yet: %v", err)
			}
			err = c.CheckFiles("a")
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckFiles: %v\nwant %q (ErrInvalid)", err, tc.want)
			}
			if _, err := c.EtcdConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("EtcdConfig: %v\nwant %q", err, tc.want)
			}
		})
	}
}
