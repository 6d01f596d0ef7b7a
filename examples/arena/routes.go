package arena

import (
	"fmt"
	"slices"

	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/rpc"
)

// The arena's module names: what a cluster file's nodes list, and what
// guild run's registry offers.
const (
	ModuleWorld = "world"
	ModuleChat  = "chat"
)

// The client routes, the pushes and the chat group.
const (
	RouteJoin  = "arena.Join"  // JoinRequest -> JoinReply (public)
	RouteMove  = "arena.Move"  // MoveRequest -> MoveReply
	RouteLeave = "arena.Leave" // google.protobuf.Empty -> google.protobuf.Empty
	RouteSay   = "chat.Say"    // SayRequest -> SayReply
	// RouteStats subscribes to the caller's own record (KindPlayer, an
	// arenapb.PlayerRecord, synced): propsyncpb.Subscribe -> its snapshot,
	// a propsyncpb.Delta; then a Delta on PushStats after each change.
	RouteStats = "arena.Stats"
	PushStats  = propsync.DefaultRoute // propsyncpb.Delta, of the caller's record
	PushWorld  = "arena.World"         // WorldUpdate, every tick
	PushBoard  = "arena.Board"         // Leaderboard, when it changes
	PushRound  = "arena.Round"         // RoundOver, when a round ends
	PushChat   = "chat.Line"           // ChatLine
	ChatGroup  = "room"                // every player's session, for chat.Line
)

// ServiceModules maps each gate service of the arena to the module that
// serves it: a gateway's routes, for a cluster file
// (routes: {arena: {module: world}, chat: {module: chat}}).
func ServiceModules() map[string]string {
	return map[string]string{"arena": ModuleWorld, "chat": ModuleChat}
}

// PublicRoutes are the routes a session may call before it has joined.
func PublicRoutes() []string { return []string{RouteJoin} }

// Routes returns a gateway's routes and public routes for the arena,
// given the node type of each module (app.Env.NodeType, or
// config.Config.NodeType): each service goes to a node of its module's
// type, in turn.
func Routes(nodeType func(module string) (int, bool)) (routes map[string]gate.Route, public []string, err error) {
	routes = make(map[string]gate.Route)
	services := ServiceModules()
	names := make([]string, 0, len(services))
	for svc := range services {
		names = append(names, svc)
	}
	slices.Sort(names)
	for _, svc := range names {
		t, ok := nodeType(services[svc])
		if !ok {
			return nil, nil, fmt.Errorf("arena: no node hosts the %q module (for the %q routes)", services[svc], svc)
		}
		routes[svc] = gate.To(rpc.AnyOf(t, cluster.RoundRobin))
	}
	return routes, PublicRoutes(), nil
}
