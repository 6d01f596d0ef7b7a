package config

import (
	"strings"
	"testing"
)

// transportFile is a two-node cluster file with the given transport
// section and extra keys for node a.
func transportFile(transport, aExtra string) string {
	return `
cluster:
  etcd: {endpoints: ["http://127.0.0.1:2379"]}
  transport: ` + transport + `
nodes:
  a: {addr: 1.1.1` + aExtra + `}
  b: {addr: 1.1.2}
`
}

// TestTransportKinds: the cluster file chooses the transport, the
// environment can too, and what does not fit is refused with the path.
func TestTransportKinds(t *testing.T) {
	c, err := Parse([]byte(transportFile("{kind: nats, url: 'nats://10.0.0.5:4222', prefix: game}", "")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.Cluster.Transport; tr.Kind != TransportNATS || c.NATSURL() != "nats://10.0.0.5:4222" || tr.Prefix != "game" {
		t.Fatalf("transport %+v, NATS URL %q", tr, c.NATSURL())
	}
	c, err = Parse([]byte(transportFile("{}", "")), []string{
		"GUILD_CLUSTER_TRANSPORT_KIND=redis",
		"GUILD_CLUSTER_TRANSPORT_URL=redis://10.0.0.7:6379/1",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.Cluster.Transport; tr.Kind != TransportRedis || tr.URL != "redis://10.0.0.7:6379/1" {
		t.Fatalf("transport from the environment: %+v", tr)
	}
	c, err = Parse([]byte(transportFile("{kind: nats}", ", nats: 127.0.0.1:4333")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSURL() != "nats://127.0.0.1:4333" {
		t.Fatalf("the embedded server's URL: %q", c.NATSURL())
	}
	if b := c.Cluster.Transport.Bus(); b.ReachTimeout != 0 || b.PendingQueue != 0 {
		t.Fatalf("zero settings should stay zero (the defaults): %+v", b)
	}

	for _, tc := range []struct{ transport, aExtra, want string }{
		{"{kind: zmq}", "", `cluster.transport: kind "zmq" is not tcp, nats, amqp or redis`},
		{"{kind: amqp}", "", "cluster.transport: kind amqp needs the broker's url"},
		{"{kind: redis}", "", "cluster.transport: kind redis needs the broker's url"},
		{"{url: 'nats://x:4222'}", "", "cluster.transport: url and prefix are for a broker"},
		{"{kind: nats, prefix: 'a b'}", "", "may not hold spaces"},
		{"{kind: tcp}", ", nats: 127.0.0.1:4333", "nodes.a.nats: an embedded NATS serves cluster.transport.kind nats without a url"},
		{"{kind: nats}", ", nats: 127.0.0.1:0", "nodes.a.nats: port 0 would hide the server"},
	} {
		_, err := Parse([]byte(transportFile(tc.transport, tc.aExtra)), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("transport %s, node a%s: %v, want an error containing %q", tc.transport, tc.aExtra, err, tc.want)
		}
	}
}

// TestTLSSections: cluster.transport.tls and gateway.tls are checked for
// what they lack, and CheckFiles reads their files.
func TestTLSSections(t *testing.T) {
	for _, tc := range []struct{ transport, aExtra, want string }{
		{"{tls: {cert_file: c.pem, key_file: k.pem}}", "", "cluster.transport.tls.ca_file: required"},
		{"{tls: {cert_file: c.pem, ca_file: ca.pem}}", "", "cluster.transport.tls: cert_file and key_file are both required"},
		{"{kind: nats, tls: {cert_file: c, key_file: k, ca_file: ca}}", "", "cluster.transport.tls: is for kind tcp"},
		{"{}", ", gateway: {tcp: 127.0.0.1:0, tls: {cert_file: c, key_file: k, server_name: x}}", "nodes.a.gateway.tls.server_name: is for cluster.transport.tls only"},
		{"{}", ", gateway: {tcp: 127.0.0.1:0, tls: {key_file: k}}", "nodes.a.gateway.tls: cert_file and key_file are both required"},
	} {
		_, err := Parse([]byte(transportFile(tc.transport, tc.aExtra)), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("transport %s, node a%s: %v, want an error containing %q", tc.transport, tc.aExtra, err, tc.want)
		}
	}
	c, err := Parse([]byte(transportFile("{tls: {cert_file: /nope/c.pem, key_file: /nope/k.pem, ca_file: /nope/ca.pem}}",
		", gateway: {tcp: 127.0.0.1:0, tls: {cert_file: /nope/g.pem, key_file: /nope/gk.pem}}")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckFiles("a")
	for _, want := range []string{"cluster.transport.tls: cert_file and key_file: open /nope/c.pem", "nodes.a.gateway.tls: cert_file and key_file: open /nope/g.pem"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckFiles: %v, want an error containing %q", err, want)
		}
	}
}
