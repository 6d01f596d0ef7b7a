package actor

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// Node states.
const (
	nodeRunning  int32 = iota
	nodeDraining       // Shutdown: no new top-level spawns; actors drain
	nodeClosed         // Close: everything refused
)

// Node hosts actors. All runtime state hangs off a Node, so one process can
// run several nodes side by side (a whole test cluster, say). Its methods are
// safe for concurrent use.
//
// Goroutines: a node owns one clock goroutine and a pool of workers that run
// the turns of actors with work (an idle actor holds none). Shutdown and
// Close wait for all of them, and end every wait still in progress on the
// node (a Call or Request) with ErrNodeClosed.
type Node struct {
	cfg      Config
	log      *slog.Logger
	procs    registry
	names    localNames
	held     heldNames
	owed     owedAnswers // answers taken Responders owe, which Shutdown waits for
	clock    *clock
	corr     atomic.Uint64
	live     atomic.Int64
	spawned  atomic.Uint64
	restarts atomic.Uint64
	handled  atomic.Uint64 // user-lane messages taken for handling, added once per batch
	// Of those, by kind, added once per run of handleUsers (when not 0).
	handledSend, handledReq, handledReply, handledTimer atomic.Uint64
	handledSys                                          atomic.Uint64 // system-lane messages taken for handling
	panics                                              atomic.Uint64
	state                                               atomic.Int32
	wg                                                  sync.WaitGroup
	futures                                             sync.Pool
	remoteMsgs                                          sync.Pool // of *RemoteMessage, reused by sendRemoteNamed and replyRemote
	chunks                                              sync.Pool // *laneChunk buffers for deep user lanes
	workers                                             workers
	sendHook                                            SendFunc // the SendInterceptors chain; nil when there are none
	closedTurn                                          *process // sentinel of a closed turn gate (see future.openTurnGate); never runs
	recvIcs                                             []ReceiveInterceptor
	reporter                                            Reporter // Config.Reporter; nil when there is none

	deadSubs  atomic.Pointer[[]*deadLetterSub]
	deadMu    sync.Mutex
	deadCount atomic.Uint64
	deadDepth atomic.Int32

	empty     chan struct{} // closed when no actor is left during shutdown
	quit      chan struct{} // closed by Close and at teardown: ends every wait on a reply
	quitOnce  sync.Once
	emptyOnce sync.Once
	stopMu    sync.Mutex // serialises Shutdown and Close
	stopped   bool
}

// NewNode validates cfg, fills its defaults and starts a node.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger.With("node", cfg.Addr.String()),
		clock:      newClock(cfg.TimerResolution),
		recvIcs:    cfg.ReceiveInterceptors,
		reporter:   cfg.Reporter,
		empty:      make(chan struct{}),
		quit:       make(chan struct{}),
		closedTurn: &process{},
	}
	n.procs.base = newRegistryBase()
	n.futures.New = func() any { return newFuture() }
	n.chunks.New = func() any { return new(laneChunk) }
	n.workers = workers{maxIdle: maxIdleWorkers, wg: &n.wg}
	if len(cfg.SendInterceptors) > 0 {
		n.sendHook = chainSend(n.deliverEnvelope, cfg.SendInterceptors)
	}
	go n.clock.run()
	return n, nil
}

// Addr returns the node's logical address.
func (n *Node) Addr() Addr { return n.cfg.Addr }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Stats is a snapshot of a node's counters. Reading it costs a few atomic
// loads; keeping the counters costs the hot path one atomic add per batch
// of messages an actor takes from its mailbox.
type Stats struct {
	Actors      int64  // live actors
	Spawned     uint64 // actors spawned since start
	Restarts    uint64 // supervisor restarts since start
	DeadLetters uint64 // messages that could not be delivered, since start
	Timers      int    // pending timers and timeouts
	// Messages counts the user-lane messages actors took from their
	// mailboxes to handle since start: user messages, replies to their
	// Requests, their timers' messages and poison pills.
	Messages uint64
	// SystemMessages counts the system-lane messages handled since start
	// (start, stop, watch, unwatch, child gone, escalate).
	SystemMessages uint64
	// Panics counts the panics recovered from actors' Receive, lifecycle
	// messages and Request callbacks since start.
	Panics uint64
	// Of Messages, by kind, once their batch is handled: Sends are the
	// one-way messages (and poison pills), Requests those that wait for a
	// reply (Request, Call, a request from another node), Replies the
	// answers to actors' Requests, TimerMessages their timers' messages.
	// A message of a stopped actor's backlog is counted in none of them.
	Sends, Requests, Replies, TimerMessages uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{
		Actors:      n.live.Load(),
		Spawned:     n.spawned.Load(),
		Restarts:    n.restarts.Load(),
		DeadLetters: n.deadCount.Load(),
		Timers:      n.clock.pending(),

		Messages:       n.handled.Load(),
		SystemMessages: n.handledSys.Load(),
		Panics:         n.panics.Load(),
		Sends:          n.handledSend.Load(),
		Requests:       n.handledReq.Load(),
		Replies:        n.handledReply.Load(),
		TimerMessages:  n.handledTimer.Load(),
	}
}
