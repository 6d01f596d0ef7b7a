package chaos_test

import (
	"sync"
	"time"
)

// opKind is what a recorded operation did.
type opKind uint8

const (
	opWrite   opKind = iota + 1 // a grain write (append an ID to its list)
	opRead                      // a grain read (the whole list)
	opForward                   // a request forwarded across nodes to an echo actor
	opBoss                      // a request to the singleton, by its global name
)

func (k opKind) String() string {
	return [...]string{"?", "write", "read", "forward", "boss"}[k]
}

// op is one client operation, as the client saw it.
type op struct {
	kind     opKind
	client   string // who issued it (for the logs)
	key      string // the grain, for writes and reads
	req      string // the request's unique ID, which the reply must echo
	write    string // the ID a write appends
	start    time.Time
	deadline time.Time
	end      time.Time
	ok       bool     // the reply came and said so
	refused  bool     // certainly not applied: refused before any handler ran it, or rolled back
	result   []string // a read's list
	reply    string   // the raw reply, for the logs
	err      error
}

// serve is one message an activation (or a name's holder) handled.
type serve struct {
	what   string // the grain's key, or "boss"
	holder uint64 // the activation, or the holder, that served
	node   int
	at     time.Time
}

// recorder collects the history. Its methods are safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	ops    []op
	serves []serve
	faults []string
}

func (r *recorder) addOp(o op) {
	r.mu.Lock()
	r.ops = append(r.ops, o)
	r.mu.Unlock()
}

func (r *recorder) addServe(s serve) {
	r.mu.Lock()
	r.serves = append(r.serves, s)
	r.mu.Unlock()
}

func (r *recorder) addFault(f string) {
	r.mu.Lock()
	r.faults = append(r.faults, f)
	r.mu.Unlock()
}

// snapshot returns copies of what was recorded.
func (r *recorder) snapshot() ([]op, []serve, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]op(nil), r.ops...), append([]serve(nil), r.serves...), append([]string(nil), r.faults...)
}
