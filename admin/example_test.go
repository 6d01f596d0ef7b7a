package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/cluster"
)

// ExampleServe runs the agent and the dashboard on one node (an in-memory
// membership stands in for etcd), then reads the view the page shows.
// In a cluster every node runs StartAgent and one or more run Serve.
func ExampleServe() {
	ctx := context.Background()
	store := cluster.NewMemory()
	members := store.Membership(actor.MustAddr(1, 1, 1))
	defer members.Close()
	node, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: actor.MustAddr(1, 1, 1)},
		Listen:     "127.0.0.1:0",
		Membership: members,
		Names:      store.Names(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()

	agent, err := admin.StartAgent(ctx, admin.AgentConfig{Node: node, Name: "solo"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer agent.Stop(ctx)
	dash, err := admin.Serve(admin.Config{Listen: "127.0.0.1:0", Node: node, Members: members, Token: "an-admin-token-0123456789"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dash.Close()

	req, _ := http.NewRequest("GET", dash.URL()+"api/view", nil)
	req.Header.Set("Authorization", "Bearer an-admin-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var v admin.View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range v.Nodes {
		fmt.Println(n.Addr, n.Name, "reachable:", n.Reachable, "actions:", v.Actions)
	}
	// Output:
	// 1.1.1 solo reachable: true actions: true
}
