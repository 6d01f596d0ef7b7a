// Package arena is the server of guild's arena demo: a small real-time
// multiplayer game. Players join with a name, move their avatars in a
// shared 2000x2000 room, see each other move 15 times a second (only the
// players near them), and chat. The browser page is in web/, the protocol
// in arenapb/arena.proto.
//
// The game is two modules (app.Module), which a cluster file places on
// nodes:
//
//   - "world" (NewWorld): one actor owns every player's state. Its timer
//     (WorldSettings.Tick) moves the players and pushes each one an
//     arena.World update with the players in the 3x3 area-of-interest
//     cells around it (WorldSettings.Cell). It serves the generated
//     arenapb.World rpc service to the other modules, and the "arena" gate
//     service to clients: arena.Join, arena.Move, arena.Leave.
//   - "chat" (NewChat): the "chat" gate service. chat.Say asks the world
//     for the sender's name through the generated World client, on
//     whichever node the world runs, and broadcasts a chat.Line to the
//     room's group.
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
//     it lives (and a push to one that is gone fails with NotFound);
//   - it has sent the world nothing (arena.Move) for WorldSettings.Idle,
//     30s by default: a safety net for a client that stays connected but
//     stops playing; the page and bots.yaml re-send their heading every
//     few seconds.
//
// RunDemo runs the whole game in one process, with the page, for
// "guild demo".
package arena
