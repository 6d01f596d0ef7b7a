package prom_test

import (
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/telemetry/prom"
)

// TestMailboxBacklog: guild_mailbox_backlog counts every live actor in
// the bucket of its mailbox's depth, read at scrape time.
func TestMailboxBacklog(t *testing.T) {
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	m := prom.New()
	if err := m.AddActor(n); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, m, nil)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	stuck, err := n.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(int); ok {
			select {
			case started <- struct{}{}:
			default:
			}
			<-release
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.SpawnFunc(func(*actor.Context) {}); err != nil { // an idle one
		t.Fatal(err)
	}
	defer close(release)
	if err := n.Send(stuck, 0); err != nil {
		t.Fatal(err)
	}
	<-started // its turn holds the first message: the next 50 wait
	for i := 1; i <= 50; i++ {
		if err := n.Send(stuck, i); err != nil {
			t.Fatal(err)
		}
	}
	await.True(t, 10*time.Second, "the stuck actor in the (10, 100] bucket, the idle one in [0, 0]", func() bool {
		h := scrape(t, srv.URL()+"/metrics", token)["guild_mailbox_backlog"]
		if h == nil || len(h.GetMetric()) != 1 {
			return false
		}
		hist := h.GetMetric()[0].GetHistogram()
		le := map[float64]uint64{}
		for _, b := range hist.GetBucket() {
			le[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		return hist.GetSampleCount() == 2 && le[0] == 1 && le[10] == 1 && le[100] == 2 && hist.GetSampleSum() == 50
	})
}
