package chatroom_test

import (
	"context"
	"fmt"
	"os"

	"github.com/guildkit/guild/examples/chatroom"
)

// The transcript is the same on every run: the room gives the floor to one
// player at a time and is the transcript's only writer.
func ExampleRun() {
	if err := chatroom.Run(context.Background(), os.Stdout, chatroom.Options{}); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// A chat room on node 1.1.1: 3 players, 3 rounds. Every name below is an actor.
	//
	// [room] alice joined (1 present)
	// [room] bob joined (2 present)
	// [room] carol joined (3 present)
	// [room] a second alice tried to join and was turned away: chatroom: name taken: "alice"
	// [room] everyone is seated; the conversation starts
	// <alice> hello! I can see bob and carol here
	// <bob> hello! I can see alice and carol here
	// <carol> hello! I can see alice and bob here
	// [room] alice crashed mid-sentence and was restarted by the lobby's supervisor; that line is lost
	// <bob> brb, the cat is on the keyboard
	// <carol> who took the last health potion?
	// <alice> the boss drops a legendary sword, I swear
	// <bob> lag spike, sorry
	// <carol> gg everyone
	// [room] that was the last round; time to go
	// [room] alice left after hearing 8 lines (2 present)
	// [room] bob left after hearing 8 lines (1 present)
	// [room] carol's actor stopped without leaving; the room was watching it and removed carol (0 present)
	// [room] the room is empty
	//
	// Summary
	//   actors spawned       7
	//   restarts             1
	//   messages handled    89  (not counting the room's clock ticks)
	//   dead letters         0
	//   actors left          0  (the node has shut down)
}
