package etcd_test

import (
	"context"
	"fmt"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
)

func ExampleStartEmbedded() {
	// An in-process etcd server, with its data in a temporary directory
	// that Close removes.
	e, err := etcd.StartEmbedded("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints(), TTL: 2 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	self := actor.MustAddr(1, 2, 1)
	if err := m.Join(ctx, cluster.Member{Addr: self, Endpoint: "127.0.0.1:7001", Available: true}); err != nil {
		fmt.Println(err)
		return
	}

	// The view is filled by a watcher: wait until it shows this node.
	var me cluster.Member
	found := false
	for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); {
		for _, mem := range m.Members() {
			if mem.Addr == self {
				me, found = mem, true
			}
		}
		if !found {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !found {
		fmt.Println("member not seen in time")
		return
	}
	fmt.Println("member:", me.Addr, me.Endpoint, "available:", me.Available)

	// Global names live under this node's lease.
	names := m.Names()
	if err := names.Register(ctx, "lobby", actor.PID{Node: self, Serial: 7}); err != nil {
		fmt.Println(err)
		return
	}
	pid, err := names.Lookup(ctx, "lobby")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("lobby is", pid)

	// Close leaves the cluster and stops every goroutine; then stop etcd.
	fmt.Println(m.Close(), e.Close())
	// Output:
	// member: 1.2.1 127.0.0.1:7001 available: true
	// lobby is 1.2.1/7
	// <nil> <nil>
}
