package config

import (
	"strings"
	"testing"
)

// TestHarbors: a harbor node needs cluster.harbors; the harbors' etcd
// client takes its endpoints and prefix (default /guild-harbors) with
// cluster.etcd's other settings; export and available reach the node.
func TestHarbors(t *testing.T) {
	const nodes = `
nodes:
  game: {addr: 1.1.1, master: 127.0.0.1:0, export: true, available: false}
  harbor: {addr: 1.255.1}
`
	if _, err := Parse([]byte(nodes), nil, nil); err == nil || !strings.Contains(err.Error(), "cluster.harbors.endpoints") {
		t.Fatalf("a harbor without cluster.harbors: %v", err)
	}
	for _, bad := range []string{
		`{endpoints: [" "]}`,
		`{endpoints: [http://h:2379], prefix: nope}`,
	} {
		if _, err := Parse([]byte("cluster:\n  harbors: "+bad+nodes), nil, nil); err == nil || !strings.Contains(err.Error(), "cluster.harbors") {
			t.Errorf("harbors %s: %v", bad, err)
		}
	}
	c, err := Parse([]byte("cluster:\n  etcd: {ttl: 3s}\n  harbors: {endpoints: [http://h:2379]}"+nodes), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := c.HarborsEtcdConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(hc.Endpoints) != 1 || hc.Endpoints[0] != "http://h:2379" || hc.Prefix != DefaultHarborsPrefix || hc.TTL != c.Cluster.Etcd.TTL {
		t.Errorf("harbors' etcd config %+v", hc)
	}
	if g := c.Nodes["game"]; !g.Export || g.Available == nil || *g.Available {
		t.Errorf("game: export %v, available %v", g.Export, g.Available)
	}
}
