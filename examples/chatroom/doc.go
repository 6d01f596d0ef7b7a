// Package chatroom is guild's first demo: a small chat of actors on one node
// that prints what it did. Run it with
//
//	go run ./cmd/guild demo
//
// It shows, in a few hundred lines, each part of package actor that a game
// server is built from:
//
//   - Actors and their state: the room, the lobby, each player and the
//     transcript are actors. Each handles one message at a time, so none of
//     their fields needs a lock.
//   - Local names: the room registers as ".room" ([actor.WithName]) and the
//     players find it with [actor.Node.Lookup].
//   - The four verbs: a player joins with Call (blocking: it has nothing else
//     to do until it has a seat), asks who is present with Request (its
//     callback runs later, inside the player's own turn), and speaks with
//     Send; the room answers Join and "who" with Respond, and turns away a
//     taken name by responding with an error value.
//   - Timers: the room paces the conversation with Every, and each player
//     "types" for a moment with After before it speaks.
//   - Supervision: the players are children of the lobby, whose supervisor
//     restarts a player that panics. One player has a deliberate bug; its
//     fresh instance rejoins the conversation, and the room carries on.
//   - Watch: the room watches every member and removes one whose actor
//     stops without leaving.
//   - Interceptors and shutdown: a ReceiveInterceptor counts what the actors
//     handled, and [actor.Node.Shutdown] stops everything gracefully.
//
// The transcript is deterministic although the actors run concurrently: the
// room passes the floor to one player at a time and is the only actor that
// writes the transcript, so the transcript follows the room's own order.
//
// Files: room.go, player.go and lobby.go hold one actor each; transcript.go
// prints; messages.go lists what they say to each other; run.go wires them
// onto a node.
package chatroom
