package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/config"
)

// MemberStatus is one node of a cluster as Status sees it.
type MemberStatus struct {
	// Name is the node's name in the configuration ("" for a member that
	// the configuration does not know).
	Name string
	// Addr is the node's address, cluster.type.index.
	Addr string
	// Type is the node type (the middle part of Addr).
	Type int
	// Up reports whether the node is in the membership. A configured node
	// that is not is listed with Up false and no Endpoint.
	Up bool
	// Endpoint is where its transport listens.
	Endpoint string
	// Available reports whether it takes new work.
	Available bool
	// Started is when it joined; Uptime is how long ago that was.
	Started time.Time
	Uptime  time.Duration
	// Version is the version of the build that runs it (WithVersion, the
	// member's Meta under MetaVersion); "" when it published none.
	Version string
}

// Status connects to the cluster's etcd, reads its membership without
// joining it, and returns its members sorted by address, followed by the
// configured nodes that are not up. The etcd endpoints are the
// configuration's (cluster.etcd.endpoints, or the master's address) unless
// WithEtcdEndpoints gives others; the TLS settings and the user are
// cluster.etcd's, whose files Status reads.
func Status(ctx context.Context, cfg *config.Config, opts ...Option) ([]MemberStatus, error) {
	o := collect(opts)
	endpoints := cfg.EtcdEndpoints()
	if len(o.etcd) > 0 {
		endpoints = o.etcd
	}
	ec, err := cfg.EtcdConfig()
	if err != nil {
		return nil, fmt.Errorf("app: status: %w", err)
	}
	ec.Endpoints = endpoints
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left <= 0 {
			return nil, ctx.Err()
		} else if ec.DialTimeout == 0 || left < ec.DialTimeout {
			ec.DialTimeout = left
		}
	}
	type result struct {
		m   *etcd.Membership
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := etcd.New(ec)
		ch <- result{m, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.m != nil {
				_ = r.m.Close()
			}
		}()
		return nil, ctx.Err()
	}
	if r.err != nil {
		return nil, fmt.Errorf("app: status: %w", r.err)
	}
	members := r.m.Members()
	if err := r.m.Close(); err != nil {
		return nil, fmt.Errorf("app: status: %w", err)
	}

	byAddr := make(map[string]string)
	for _, name := range cfg.NodeNames() {
		byAddr[cfg.Nodes[name].Address().String()] = name
	}
	now := time.Now()
	var out []MemberStatus
	up := make(map[string]bool)
	for _, m := range members {
		a := m.Addr.String()
		name, ok := byAddr[a]
		if !ok {
			name = m.Meta[MetaNode]
		}
		up[a] = true
		out = append(out, MemberStatus{
			Name: name, Addr: a, Type: m.Addr.Type(), Up: true, Endpoint: m.Endpoint,
			Available: m.Available, Started: m.Started, Uptime: now.Sub(m.Started),
			Version: m.Meta[MetaVersion],
		})
	}
	var down []MemberStatus
	for _, name := range cfg.NodeNames() {
		n := cfg.Nodes[name]
		if a := n.Address(); !up[a.String()] {
			down = append(down, MemberStatus{Name: name, Addr: a.String(), Type: a.Type()})
		}
	}
	slices.SortFunc(down, func(a, b MemberStatus) int {
		return int(int64(cfgAddr(cfg, a.Name)) - int64(cfgAddr(cfg, b.Name)))
	})
	return append(out, down...), nil
}

func cfgAddr(cfg *config.Config, name string) int64 { return int64(cfg.Nodes[name].Address()) }
