package actor

// Actor is the game logic of one actor: a user type with a single method.
// Receive runs for one message at a time, never concurrently with itself, on
// whatever goroutine the runtime picked for this turn. State kept in the
// actor's fields needs no locks.
type Actor interface {
	Receive(c *Context)
}

// ReceiveFunc is the function form of an actor, and the shape of the receive
// step that ReceiveInterceptors wrap.
type ReceiveFunc func(c *Context)

// Receive calls f.
func (f ReceiveFunc) Receive(c *Context) { f(c) }

// Producer makes a fresh actor instance. Spawn calls it once, and the
// supervisor calls it again at each restart, so it should return a new value
// each time.
type Producer func() Actor

// Envelope is a message on its way out, as SendInterceptors see it. An
// interceptor may change Message (or Target) before it calls next, or return
// an error instead of calling next to refuse the send.
type Envelope struct {
	Sender PID
	Target PID
	// TargetName is the name the sender addressed (SendName, CallName,
	// RequestName), empty when it addressed a PID; Target is then the
	// name's holder as resolved on the sending node.
	TargetName string
	Message    any

	fut      *future
	corr     uint64
	deadline int64
	via      Addr
}

// IsRequest reports whether the sender waits for a reply (Request or Call).
func (e *Envelope) IsRequest() bool { return e.corr != 0 }

// SendFunc is the send step that SendInterceptors wrap.
type SendFunc func(e *Envelope) error

// SendInterceptor is middleware around every Send, Request and Call a node
// makes (replies are not intercepted). It is the place for tracing, metrics
// and access rules. Interceptors run on the sender's goroutine, so they must
// be safe for concurrent use.
type SendInterceptor func(next SendFunc) SendFunc

// ReceiveInterceptor is middleware around an actor's Receive, lifecycle
// messages included. It runs inside the actor's turn.
type ReceiveInterceptor func(next ReceiveFunc) ReceiveFunc

func chainReceive(final ReceiveFunc, ics []ReceiveInterceptor) ReceiveFunc {
	for i := len(ics) - 1; i >= 0; i-- {
		final = ics[i](final)
	}
	return final
}

func chainSend(final SendFunc, ics []SendInterceptor) SendFunc {
	for i := len(ics) - 1; i >= 0; i-- {
		final = ics[i](final)
	}
	return final
}
