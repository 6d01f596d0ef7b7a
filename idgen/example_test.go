package idgen_test

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/idgen"
)

// A single node with a fixed machine ID.
func Example() {
	gen, err := idgen.New(42)
	if err != nil {
		panic(err)
	}
	a, _ := gen.Next()
	b, _ := gen.Next()
	fmt.Println(a.Machine(), b > a)

	id, _ := idgen.ParseID(a.String())
	fmt.Println(id == a)
	// Output:
	// 42 true
	// true
}

func ExampleLease() {
	e, err := etcd.StartEmbedded("")
	if err != nil {
		panic(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		panic(err)
	}
	defer cli.Close()

	// Each node leases the lowest free machine ID and keeps it until Close.
	gen, err := idgen.Lease(context.Background(), cli, "/myapp", 10*time.Second)
	if err != nil {
		panic(err)
	}
	defer gen.Close()
	id, err := gen.Next()
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Machine())
	// Output: 0
}
