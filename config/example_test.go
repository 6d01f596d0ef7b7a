package config_test

import (
	"fmt"

	"github.com/guildkit/guild/config"
)

func ExampleParse() {
	file := []byte(`
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:2379
    gateway: {tcp: 127.0.0.1:7000, routes: {arena: {module: world}}}
  world-1:
    addr: 1.2.1
    modules: [world]
`)
	env := []string{"GUILD_NODES_WORLD_1_LISTEN=127.0.0.1:7102"}
	c, err := config.Parse(file, env, []string{"world"})
	if err != nil {
		fmt.Println(err)
		return
	}
	typ, _ := c.NodeType("world")
	fmt.Println(c.Nodes["world-1"].Listen, c.EtcdEndpoints(), typ)

	_, err = config.Parse([]byte("nodes:\n  a: {addr: 1.2, listen: 127.0.0.1:7000, gateway: {tcp: 127.0.0.1:7000}}\n"), nil, nil)
	fmt.Println(err)
	// Output:
	// 127.0.0.1:7102 [http://127.0.0.1:2379] 2
	// nodes.a.addr: "1.2" is not cluster.type.index
	// cluster.etcd.endpoints: the nodes have no etcd: give its endpoints, or make one node the master
	// nodes.a.gateway.tcp: 127.0.0.1:7000 is also nodes.a.listen
}
