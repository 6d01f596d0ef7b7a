package cluster

// CloseTransport closes n's transport only, as if the node's network went
// away while its actors still run.
func CloseTransport(n *Node) error { return n.tr.Close() }

// PendingRequests returns how many outgoing requests of n wait for an
// answer.
func PendingRequests(n *Node) int { return n.remote.pendingCount() }

// Watches returns how many watches n's actors keep on actors of other
// nodes.
func Watches(n *Node) int { return n.remote.watches.count() }
