// Package testpki makes throwaway certificates for tests: a CA, a server
// certificate it signed for 127.0.0.1 and localhost, and a client
// certificate it signed, written as PEM files to the test's temporary
// directory. The keys are made when the test runs; none is ever committed.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA and the certificates it signed, in memory and as files.
type PKI struct {
	// CAFile is the CA certificate (PEM); Pool holds it.
	CAFile string
	Pool   *x509.CertPool
	// ServerCert and ServerKey are the server's certificate and key
	// files: for 127.0.0.1 and localhost, usable by a client too (etcd's
	// own gateway dials the server with it).
	ServerCert, ServerKey string
	// ClientCert and ClientKey are the client's certificate and key
	// files; Client is the same certificate loaded.
	ClientCert, ClientKey string
	Client                tls.Certificate
}

// New makes a CA, a server certificate and a client certificate whose
// common name is client, valid for an hour, and writes them to a new
// directory of t.TempDir. It fails t on error.
func New(t testing.TB, client string) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "guild test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	sign := func(serial int64, cn string, usage []x509.ExtKeyUsage, ips []net.IP, dns []string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  usage,
			IPAddresses:  ips,
			DNSNames:     dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	der, key := sign(2, "localhost", both, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	p.ServerCert = writePEM(t, dir, "server.pem", "CERTIFICATE", der)
	p.ServerKey = writePEM(t, dir, "server-key.pem", "PRIVATE KEY", marshalKey(t, key))

	der, key = sign(3, client, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil)
	p.ClientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", der)
	p.ClientKey = writePEM(t, dir, "client-key.pem", "PRIVATE KEY", marshalKey(t, key))
	p.Client = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return p
}

// ClientTLS returns a TLS configuration trusting the CA and presenting
// the client certificate: mutual TLS.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}, MinVersion: tls.VersionTLS12}
}

// ServerOnlyTLS returns a TLS configuration trusting the CA, without a
// client certificate.
func (p *PKI) ServerOnlyTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func marshalKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writePEM writes one PEM block to dir/name, readable by its owner only,
// and returns the path.
func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
