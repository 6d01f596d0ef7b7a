package wire

// The operations of KindSystem envelopes: runtime traffic between nodes.
// The operation is the envelope's PayloadType; these envelopes carry no
// payload. See docs/PROTOCOL-NODE.md, section "System envelopes".
const (
	// SystemWatch: Sender watches TargetPID; the receiving node answers
	// with SystemTerminated when the target ends (at once if it does not
	// exist).
	SystemWatch = "guild.watch"
	// SystemUnwatch cancels a SystemWatch of TargetPID by Sender.
	SystemUnwatch = "guild.unwatch"
	// SystemTerminated tells the watcher TargetPID that Sender has ended;
	// ErrorCode says why: CodeStopped (it stopped) or CodeNotFound (there
	// was no such actor when the watch arrived).
	SystemTerminated = "guild.terminated"
	// SystemStop stops TargetPID at once.
	SystemStop = "guild.stop"
	// SystemPoison stops TargetPID after the messages queued before it.
	SystemPoison = "guild.poison"
)
