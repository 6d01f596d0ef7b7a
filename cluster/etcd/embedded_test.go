package etcd_test

import (
	"net"
	"strings"
	"testing"

	"github.com/guildkit/guild/cluster/etcd"
)

func TestEmbeddedConfigListen(t *testing.T) {
	if _, err := etcd.StartEmbeddedConfig(etcd.EmbeddedConfig{Dir: t.TempDir(), Listen: "no-port"}); err == nil || !strings.Contains(err.Error(), "Listen") {
		t.Fatalf("bad Listen: err = %v, want one naming Listen", err)
	}
	// A fixed port, as a master node uses: find a free one first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostport := l.Addr().String()
	l.Close()
	e, err := etcd.StartEmbeddedConfig(etcd.EmbeddedConfig{Dir: t.TempDir(), Listen: hostport})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Endpoints(); len(got) != 1 || got[0] != "http://"+hostport {
		t.Fatalf("Endpoints() = %v, want [http://%s]", got, hostport)
	}
	m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
