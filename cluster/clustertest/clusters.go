package clustertest

import (
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/transport/tcp"
)

// clusterGroup is the clusters of one StartClusters: each one's proxies
// apply, to connections from the others' nodes, the mode of those nodes
// (Reset for a killed one, Blackhole for a paused one), so that a node
// killed or paused in one cluster is so for every cluster.
type clusterGroup struct {
	all []*Cluster // set before any fault, then read-only

	// mu guards modes. Lock order: Cluster.mu, then clusterGroup.mu (a
	// leaf: nothing is called while it is held).
	mu    sync.Mutex
	modes map[actor.Addr]faultnet.Mode // each node's mode as the other clusters see it
}

// set records the mode of the node at a.
func (g *clusterGroup) set(a actor.Addr, m faultnet.Mode) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.modes[a] = m
}

// others returns the modes of the nodes of the clusters other than c.
func (g *clusterGroup) others(c *Cluster) map[actor.Addr]faultnet.Mode {
	g.mu.Lock()
	out := maps.Clone(g.modes)
	g.mu.Unlock()
	for _, a := range c.Addrs {
		delete(out, a)
	}
	return out
}

// ClustersOptions configures StartClusters. The zero value is two
// clusters of three nodes and two harbors each.
type ClustersOptions struct {
	// Clusters is how many clusters to run, numbered 1, 2, ... Default 2.
	Clusters int
	// Nodes is how many nodes of type 1 each cluster has. Default 3.
	Nodes int
	// Harbors is how many harbor nodes (type actor.HarborType) each
	// cluster has. Default 2.
	Harbors int
	// Options is the template of every cluster's Options: its Nodes,
	// Cluster, Clusters and HarborEtcd are set per cluster; Export and
	// Types, when set, have one entry per node that is not a harbor (the
	// harbors export nothing; their type is actor.HarborType).
	Options Options
	// Types, optional, gives the node types of each cluster's nodes that
	// are not harbors, cluster by cluster (Types[k] for cluster k+1, of
	// length Nodes), over Options.Types.
	Types [][]int
	// Export, optional, likewise gives each cluster's Export flags, over
	// Options.Export.
	Export [][]bool
}

// Clusters is several clusters in one process, each with its own
// embedded etcd, joined by harbor nodes that also share an etcd of their
// own (the harbors' membership). Each cluster is a Cluster, with its
// fault methods: Kill a harbor of cluster k with Each[k].Kill(i).
type Clusters struct {
	// Each holds the clusters: Each[k] is cluster k+1. In each, nodes 0
	// to Nodes-1 are of type 1 and the last Harbors nodes are harbors.
	Each []*Cluster
	// HarborEtcd is the harbors' embedded etcd.
	HarborEtcd *etcd.Embedded
	// Nodes and Harbors are the counts per cluster.
	Nodes, Harbors int
}

// StartClusters runs an embedded etcd for the harbors, then opts.Clusters
// clusters (each a Start with its own etcd) whose harbor nodes join the
// harbors' etcd as well, and waits until every harbor sees every other.
// It fails t on any error, and the cleanups close everything (the
// clusters first, the harbors' etcd last). Call it from the test
// goroutine.
//
// The clusters run on the TCP mesh unless opts.Options.Transport says
// otherwise: GUILD_TEST_TRANSPORT does not apply here. A harbor reaches
// the other clusters' harbors over its own transport, and on a broker
// that takes one broker shared by the clusters, where Start gives each
// Cluster an embedded NATS server of its own.
func StartClusters(t testing.TB, opts ClustersOptions) *Clusters {
	t.Helper()
	if opts.Clusters == 0 {
		opts.Clusters = 2
	}
	if opts.Nodes == 0 {
		opts.Nodes = DefaultNodes
	}
	if opts.Harbors == 0 {
		opts.Harbors = 2
	}
	if opts.Clusters < 0 || opts.Nodes < 0 || opts.Harbors < 0 {
		t.Fatalf("clustertest: negative ClustersOptions %+v", opts)
	}
	if opts.Options.Export != nil && len(opts.Options.Export) != opts.Nodes {
		t.Fatalf("clustertest: len(ClustersOptions.Options.Export) = %d, want Nodes = %d", len(opts.Options.Export), opts.Nodes)
	}
	if opts.Options.Types != nil && len(opts.Options.Types) != opts.Nodes {
		t.Fatalf("clustertest: len(ClustersOptions.Options.Types) = %d, want Nodes = %d", len(opts.Options.Types), opts.Nodes)
	}
	for _, l := range []int{len(opts.Types), len(opts.Export)} {
		if l != 0 && l != opts.Clusters {
			t.Fatalf("clustertest: ClustersOptions.Types or Export has %d clusters, want %d", l, opts.Clusters)
		}
	}
	he, err := etcd.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatalf("clustertest: the harbors' etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := he.Close(); err != nil {
			t.Errorf("clustertest: close the harbors' etcd: %v", err)
		}
	})
	cs := &Clusters{HarborEtcd: he, Nodes: opts.Nodes, Harbors: opts.Harbors}
	for k := range opts.Clusters {
		o := opts.Options
		if o.Transport == nil {
			o.Transport = tcp.Config{} // not GUILD_TEST_TRANSPORT's (see the doc)
		}
		o.Nodes = opts.Nodes + opts.Harbors
		o.Cluster, o.Clusters = k+1, nil
		types, export := opts.Options.Types, opts.Options.Export
		if opts.Types != nil {
			types = opts.Types[k]
		}
		if opts.Export != nil {
			export = opts.Export[k]
		}
		if (types != nil && len(types) != opts.Nodes) || (export != nil && len(export) != opts.Nodes) {
			t.Fatalf("clustertest: cluster %d: Types or Export of the wrong length, want Nodes = %d", k+1, opts.Nodes)
		}
		o.Types = make([]int, o.Nodes)
		for i := range o.Types {
			switch {
			case i >= opts.Nodes:
				o.Types[i] = actor.HarborType
			case types != nil:
				o.Types[i] = types[i]
			default:
				o.Types[i] = 1
			}
		}
		o.Export = nil
		if export != nil {
			o.Export = append(append([]bool(nil), export...), make([]bool, opts.Harbors)...)
		}
		o.HarborEtcd = he.Endpoints()
		cs.Each = append(cs.Each, Start(t, o))
	}
	grp := &clusterGroup{all: cs.Each, modes: make(map[actor.Addr]faultnet.Mode)}
	for _, c := range cs.Each {
		c.mu.Lock()
		c.grp = grp
		c.applyLocked()
		c.mu.Unlock()
	}
	for _, c := range cs.Each {
		c.applyOthers()
	}
	want := opts.Clusters * opts.Harbors
	cs.Each[0].WaitFor(t, fmt.Sprintf("every harbor to see the %d harbors", want), func() bool {
		for _, c := range cs.Each {
			for i := opts.Nodes; i < len(c.Nodes); i++ {
				if !c.live(i) {
					continue
				}
				if hm := c.HarborMembership(i); hm == nil || len(hm.Members()) != want {
					return false
				}
			}
		}
		return true
	})
	return cs
}

// Harbor returns the index in Each[k] of cluster k+1's harbor h (counting
// from 0).
func (cs *Clusters) Harbor(h int) int { return cs.Nodes + h }
