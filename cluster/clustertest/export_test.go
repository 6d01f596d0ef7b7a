package clustertest

import "github.com/guildkit/guild/cluster/clustertest/faultnet"

// EtcdRefuse resets (on) or passes (off) every connection between
// node i and etcd: etcd refuses node i, as a crashed etcd endpoint or a
// firewall that sends resets would. Unlike EtcdOutage, nothing sent
// meanwhile is delivered later.
func (c *Cluster) EtcdRefuse(i int, on bool) {
	m := faultnet.Pass
	if on {
		m = faultnet.Reset
	}
	c.etcdProxies[i].SetDefault(m)
	c.logf("fault: node %d's etcd link: %v", i, m)
}
