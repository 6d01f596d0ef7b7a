// Package hostile is guild's hostile-client suite: attacks that a
// misbehaving client can make on a gateway (garbage bytes, oversized
// frames, slowloris headers, idle HTTP keep-alives, join floods,
// reconnecting to reset a rate limit, idle sessions holding slots,
// heartbeat and refused-request floods, clients that stop reading, chat
// floods, hostile names and chat, cross-origin WebSockets), and well-
// behaved bots that measure what the attack costs the good players:
// their latency (p50, p99), their errors and their disconnections, beside
// the process's heap.
//
// Each attack runs against a real gateway on real sockets until its
// context ends, sized by a number (connections or workers), and reports
// what it did. The test of this package runs each one in bounded form
// against the arena demo (examples/arena.RunDemo) in-process beside the
// bots, measuring a baseline in the same run first, and asserts the goal
// of issue 19: the gateway stays up, the good clients' p99 stays within
// 2× the baseline (plus an absolute floor, for a busy machine), no good
// client is disconnected or sees an error. docs/SECURITY.md lists the
// attacks, the limits that stop them, and the figures.
//
// The package is internal: it is a test harness, not an API.
package hostile
