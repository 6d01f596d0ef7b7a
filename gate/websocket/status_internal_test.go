package gatews

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// TestCloseStatus: each ending's close status, as the package doc lists
// them (gate's TestEveryEndingSaysWhy checks them on the wire).
func TestCloseStatus(t *testing.T) {
	for _, c := range []struct {
		name string
		e    gate.Ending
		want websocket.StatusCode
	}{
		{"clean", gate.Ending{}, websocket.StatusNormalClosure},
		{"clean with a reason", gate.Ending{Reason: "said"}, websocket.StatusNormalClosure},
		{"going away", gate.Ending{Code: gate.GoingAway}, websocket.StatusGoingAway},
		{"protocol error", gate.Ending{Code: rpc.InvalidArgument}, websocket.StatusProtocolError},
		{"text message", gate.Ending{Code: rpc.InvalidArgument, Err: &gate.EndError{Code: rpc.InvalidArgument, Err: errTextMessage}}, websocket.StatusUnsupportedData},
		{"too large", gate.Ending{Code: rpc.ResourceExhausted}, websocket.StatusMessageTooBig},
		{"gateway full", gate.Ending{Code: rpc.Unavailable, Cause: gate.CauseGatewayFull, Refused: true}, websocket.StatusTryAgainLater},
		{"source conns", gate.Ending{Code: rpc.ResourceExhausted, Cause: gate.CauseSourceConns, Refused: true}, websocket.StatusTryAgainLater},
		{"source rate", gate.Ending{Code: rpc.ResourceExhausted, Cause: gate.CauseSourceRate, Refused: true}, websocket.StatusTryAgainLater},
		{"slow client", gate.Ending{Code: rpc.ResourceExhausted, Cause: gate.CauseSlowClient}, websocket.StatusPolicyViolation},
		{"rate limit", gate.Ending{Code: rpc.ResourceExhausted, Cause: gate.CauseRateLimit}, websocket.StatusPolicyViolation},
		{"heartbeat lost", gate.Ending{Code: rpc.DeadlineExceeded}, 4004},
		{"kicked", gate.Ending{Code: rpc.PermissionDenied}, 4007},
		{"unauthenticated", gate.Ending{Code: rpc.Unauthenticated}, 4016},
		{"a game's code", gate.Ending{Code: 1001}, websocket.StatusPolicyViolation},
	} {
		if got := closeStatus(c.e); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCloseReason: a reason longer than a close frame holds is cut on a
// UTF-8 boundary.
func TestCloseReason(t *testing.T) {
	if got := closeReason("short"); got != "short" {
		t.Errorf("short: %q", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes
	got := closeReason(long)
	if len(got) > 123 || len(got) < 122 || !strings.HasPrefix(long, got) {
		t.Errorf("cut to %d bytes: %q", len(got), got)
	}
}
