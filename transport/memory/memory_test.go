package memory_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/memory"
	"github.com/guildkit/guild/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast detects a lost peer within a few seconds: soon enough for the
// suite, and not so soon that a starved test machine loses a live one.
var fast = bus.Options{PendingQueue: 64, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second, ReachTimeout: 2 * time.Second}

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Options{
		New: func(t *testing.T) transport.Config {
			return memory.Config{Network: memory.NewNetwork(), Options: fast}
		},
		PendingQueue: fast.PendingQueue,
		MaxFrame:     fast.MaxFrame,
		Silent: func(t *testing.T, cfg transport.Config) string {
			name, remove := cfg.(memory.Config).Network.Sink("memory/silent")
			t.Cleanup(remove)
			return name
		},
		Inject: func(t *testing.T, cfg transport.Config, endpoint string, raw []byte) {
			if err := cfg.(memory.Config).Network.Inject(endpoint, raw); err != nil {
				t.Fatalf("inject: %v", err)
			}
		},
		Outage: func(t *testing.T, cfg transport.Config) func() {
			n := cfg.(memory.Config).Network
			n.Outage()
			return n.Restore
		},
	})
}
