package gate_test

import (
	"regexp"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/internal/await"
)

// TestSessionIDReadable: a session in a reused actor slot has an ID that
// reads as node/slot.generation (not the 64-bit serial), which Push
// takes.
func TestSessionIDReadable(t *testing.T) {
	f := startOneNode(t, gate.Config{})
	form := regexp.MustCompile(`^1\.1\.1/[1-9][0-9]*(\.[1-9][0-9]*)?$`)
	reused := false
	for i := 0; i < 20 && !reused; i++ {
		r := rawDial(t, f.addr)
		id := r.handshake().GetSessionId()
		if !form.MatchString(id) {
			t.Fatalf("session ID %q does not read as node/slot or node/slot.generation", id)
		}
		pid, err := gate.ParseSessionID(id)
		if err != nil || pid.String() != id {
			t.Fatalf("ParseSessionID(%q) = %v, %v", id, pid, err)
		}
		if err := gate.Push(f.n, id, "chat.Pushed", wrapperspb.String("hi")); err != nil {
			t.Fatalf("Push to %s: %v", id, err)
		}
		if p := r.mustNext().GetPush(); p.GetRoute() != "chat.Pushed" {
			t.Fatalf("session %s got %v, want the push", id, p)
		}
		reused = pid.Serial>>32 > 0
		r.send(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{}}})
		r.wantEnd()
		await.True(t, waitTimeout, "the session to end", func() bool { return f.g.Conns() == 0 })
	}
	if !reused {
		t.Fatal("20 sessions one after another never reused an actor slot")
	}
}
