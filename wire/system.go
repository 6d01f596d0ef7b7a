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
	// SystemExports, from a harbor to a node of its cluster, lists the
	// exported members of the other clusters that the harbor reaches:
	// unlike the others it carries a payload, their addresses as text,
	// "cluster.type.index" separated by commas. See docs/PROTOCOL-NODE.md,
	// section "Harbors".
	SystemExports = "guild.exports"
)
