package chatroom

// The messages the demo's actors exchange. Within one process any Go value
// can be a message; small structs keep every Receive a plain type switch.
type (
	// join asks the room for a seat. It is a Call: the answer is the number
	// of members present, or an error when the name is taken.
	join struct{ name string }
	// who asks the room who is present. It is a Request: the answer is a
	// []string of names in the order they joined.
	who struct{}
	// say asks the room to broadcast a line. Only the player holding the
	// floor may speak.
	say struct{ text string }
	// heard is a line the room broadcasts to every member.
	heard struct{ from, text string }
	// leave tells the room that the sender is leaving, and how many lines it
	// heard while it was there.
	leave struct{ heard int }
	// back tells the room that the sender crashed and its supervisor
	// restarted it.
	back struct{}

	// open tells the room that the lobby has seated every player.
	open struct{}
	// tick is the room's Every timer: each tick may pass the floor on.
	tick struct{}
	// yourTurn gives a player the floor for one line.
	yourTurn struct{ round int }
	// typed is a player's After timer: it has finished typing its line.
	typed struct{ round int }
	// goodbye asks a member to go, once every round is over.
	goodbye struct{}

	// seated tells the lobby that its newest player has a seat.
	seated struct{}
	// turnedAway tells the lobby that its newest player could not join.
	turnedAway struct{ err error }

	// endOfTranscript tells the transcript that the room is empty.
	endOfTranscript struct{}
)
