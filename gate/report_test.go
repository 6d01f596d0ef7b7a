package gate_test

import (
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// failures is an actor.Reporter that hands each failure to a channel.
type failures chan actor.Failure

func (f failures) Report(x actor.Failure) {
	select {
	case f <- x:
	default:
	}
}

func TestPanicsAreReported(t *testing.T) {
	got := make(failures, 16)
	n, err := actor.NewNode(actor.Config{Reporter: got})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	pid := serve(t, n, chatService("chat"))
	g := newGate(t, gate.Config{
		Node:   n,
		Public: []string{"chat.Panic", "chat.Echo"},
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(pid))},
		OnOpen: func(*gate.SessionInfo) { panic("hook boom") },
	})
	url, _ := listenTCP(t, g)
	c := dial(t, client.Config{Addr: url})
	_, err = call(t, c, "chat.Panic", "")
	wantCode(t, "a panicking handler", err, rpc.Internal)
	seen := map[string]actor.Failure{}
	waitFor(t, "the handler's and the hook's reports", func() bool {
		select {
		case f := <-got:
			seen[f.Where] = f
		default:
		}
		return seen["gate"].Where != "" && seen["gate hook"].Where != ""
	})
	if f := seen["gate"]; f.PID != pid || f.MessageType != "chat.Panic" || len(f.Stack) == 0 || f.Node != n.Addr() {
		t.Errorf("handler failure %+v", f)
	}
	if f := seen["gate hook"]; f.Reason != "hook boom" || len(f.Stack) == 0 {
		t.Errorf("hook failure %+v", f)
	}
}
