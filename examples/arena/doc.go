// Package arena is the server of guild's arena demo: a small real-time
// multiplayer game. Players join with a name, steer their avatars in a
// shared 2000x2000 room, see each other move 15 times a second (only the
// players near them), pick up orbs to score, and chat. The browser page is
// in web/, the protocol in arenapb/arena.proto.
//
// # The game
//
//   - A new player starts near the player who arrived last (near the
//     room's centre when it is empty), so two players who join one after
//     the other see each other at once.
//   - The room holds WorldSettings.Orbs orbs (60), half of them scattered
//     anywhere and half near players. The first player whose centre comes
//     within PickupRadius of an orb's scores its value (1; a gold orb, one
//     in ten, 5); of two players in reach at the same tick the closer one
//     gets it. A new orb replaces it at once. An orb nobody picks up makes
//     way for a new one after about WorldSettings.OrbLife (30s), so orbs
//     keep coming near every player. The world actor alone decides.
//   - A round lasts WorldSettings.Round (2 minutes). When it ends, every
//     player is pushed the round's best three (arena.Round) and every score
//     starts again from zero.
//   - The leaderboard holds the best round score of each name, the ten
//     best. It is updated as scores grow, and pushed to every player when
//     it changes (arena.Board).
//   - Names are unique among the players online, without regard to case:
//     a second "Ada" is refused with AlreadyExists and a message saying
//     so. A page that reconnects sends the resume token of its JoinReply
//     and gets its player back, with its place and score.
//
// # Grains and the store
//
// The records outlive the server: each name has an arena.player grain
// (KindPlayer, keyed by the name in lower case: best round score, orbs
// picked up, rounds scored in, joins) and the leaderboard is one arena.leaderboard grain
// (KindLeaderboard). The world actor reports each score to the player's
// grain with a Request (it never waits on a grain), which offers a new
// best to the leaderboard grain and answers the leaderboard when it
// changed. The grains keep their state in the embedded store (a bbolt
// file) named by WorldSettings.Store, flushed every two seconds and when
// the module stops, so the leaderboard survives a restart. Without a
// Store they live in memory.
//
// # Your stats: a synced grain
//
// The player grain's state is synced to its player (grain.Kind.Sync,
// package propsync): arena.Stats (RouteStats) subscribes the caller's
// session to the record of the name it plays and answers its snapshot;
// after each turn that changed the record, the grain pushes a delta
// (PushStats, "propsync") to the subscribed sessions. The page keeps a
// replica with the TypeScript SDK's subscribeReplica and shows it in its
// "Your stats" panel (web/src/stats.ts): best round score, last round
// scored, rounds scored in (the world tells the grain when a round ends,
// RoundRequest), orbs and points picked up, visits. The record's
// last_player_id is marked (guild.propsync.private) in arena.proto: it
// is stored, never sent. The record is keyed by the name, while a
// session's user ID is its player's ID, so gate.UserGrain cannot route
// there: the arena service asks the world which name the session plays,
// then subscribes the session with grain.System.Subscribe, as the user
// of that key.
//
// The grains run on the node that hosts the world module (its
// grain.System hosts both kinds), so the store is opened by that node's
// process alone, as the embedded store requires. In a cluster the grains'
// claims are kept in etcd. A game with several world nodes would need a
// shared store (store/redisstore, pgstore or mysqlstore) instead.
//
// # Modules
//
// The game is two modules (app.Module), which a cluster file places on
// nodes:
//
//   - "world" (NewWorld): one actor owns every player's and orb's state.
//     Its timer (WorldSettings.Tick) moves the players, hands out the orbs
//     they touch, ends the rounds, and pushes each one an arena.World
//     update with the players and orbs in the 3x3 area-of-interest cells
//     around it (WorldSettings.Cell): one update per occupied cell,
//     encoded once for its players (gate.PushMany) and latest-wins, so a
//     player slow to read gets the newest, not a backlog. It serves the generated arenapb.World
//     rpc service to the other modules, and the "arena" gate service to
//     clients: arena.Join, arena.Move, arena.Leave, arena.Stats. It hosts
//     the grains.
//   - "chat" (NewChat): the "chat" gate service. chat.Say asks the world
//     for the sender's name through the generated World client, on
//     whichever node the world runs, and broadcasts a chat.Line to the
//     room's group, as a droppable push. Each user may say ChatRate lines
//     a second, ChatBurst at once (ResourceExhausted beyond), and the
//     room's broadcasts have the gateway's group budget. A client logged
//     in by a token that has not joined (an MQTT client, say) speaks as
//     "@" and its user ID.
//
// Routes gives a gateway the routes that match: arena.* to the world's
// nodes, chat.* to the chat's, arena.Join public.
//
// # Players leaving
//
// A module cannot hook the gateway's session close (the gateway belongs to
// the node's configuration), so a player leaves the world when:
//
//   - its client sends arena.Leave;
//   - its session closes, or the gateway node holding it leaves or dies:
//     the world watches every player's session actor, on whichever node
//     it lives;
//   - it has sent the world nothing (arena.Move) for WorldSettings.Idle,
//     30s by default: a safety net for a client that stays connected but
//     stops playing; the page and bots.yaml re-send their heading every
//     few seconds.
//
// RunDemo runs the whole game in one process, with the page, for
// "guild demo".
package arena
