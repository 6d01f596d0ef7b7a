package tcp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testPKI is a throwaway CA and a certificate it signed for 127.0.0.1,
// usable as both server and client.
type testPKI struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "guild test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "guild node"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{pool: pool, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func (p testPKI) mutualTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.cert},
		RootCAs:      p.pool,
		ClientCAs:    p.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	res := newResolver()
	logs := &syncBuffer{}
	ha, hb := newRecorder(), newRecorder()
	ca, cb := fastConfig(addrA, res, ha), fastConfig(addrB, res, hb)
	ca.TLS, cb.TLS = pki.mutualTLS(), pki.mutualTLS()
	cb.Logger = testLogger(logs)
	a := start(t, ca, res)
	b := start(t, cb, res)

	const n = 1000
	for i := range n {
		sendRetry(t, a, addrB, seqEnv(addrA, uint64(i)))
		sendRetry(t, b, addrA, seqEnv(addrB, uint64(i)))
	}
	waitFor(t, 5*time.Second, "envelopes over TLS", func() bool { return ha.count(addrB) == n && hb.count(addrA) == n })
	checkOrder(t, hb.received(addrA), n)
	checkOrder(t, ha.received(addrB), n)

	// A client without a certificate is refused: it never gets B's hello.
	cli, err := tls.Dial("tcp", b.Addr().String(), &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err == nil {
		defer cli.Close()
		_, _ = cli.Write(appendHello(nil, addrC, 0))
		_ = cli.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := readHello(cli); err == nil {
			t.Fatal("a client without a certificate completed the handshake")
		}
	}
	waitFor(t, 2*time.Second, "logged TLS failure", func() bool { return logs.contains("TLS handshake failed") })
	if hb.count(addrC) != 0 {
		t.Fatal("envelopes accepted from a client without a certificate")
	}

	// A plain-TCP client is refused too.
	plain := fastConfig(addrC, res, newRecorder())
	c := start(t, plain, res)
	if err := c.Send(addrB, seqEnv(addrC, 0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if hb.count(addrC) != 0 || b.liveConns() != 1 {
		t.Fatalf("plain TCP peer got through: %d envelopes, %d connections", hb.count(addrC), b.liveConns())
	}
}
