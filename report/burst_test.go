package report_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/report"
)

// burst sends panics moves to bad, calling other every 500 of them; each
// of those calls must complete. It returns how many did, once bad has
// handled every move.
func burst(t *testing.T, n *actor.Node, bad, other actor.PID, panics int) int {
	t.Helper()
	trips := 0
	for i := range panics {
		if err := n.Send(bad, move{}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%500 == 0 {
			v, err := n.Call(ctxTimeout(t, waitTimeout), other, "ping")
			if err != nil || v != "ping" {
				t.Fatalf("a round trip to another actor during the burst (after %d panics): %v, %v", i, v, err)
			}
			trips++
		}
	}
	if v, err := n.Call(ctxTimeout(t, waitTimeout), bad, "count"); err != nil || v != panics {
		t.Fatalf("the panicking actor handled %v (%v), want %d", v, err, panics)
	}
	return trips
}

func TestBurstOfPanicsIsBoundedAndCounted(t *testing.T) {
	const (
		panics   = 10_000
		interval = 50 * time.Millisecond
		queue    = 200
		batch    = 50
	)
	h := newHook(t, nil)
	w, err := report.NewWebhook(report.WebhookConfig{URL: h.srv.URL, Queue: queue, Batch: batch, Interval: interval, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, w, resume)
	bad, other := panicker(t, n), panicker(t, n)
	start := time.Now()
	trips := burst(t, n, bad, other, panics)
	_, during := h.snapshot()
	elapsed := time.Since(start) // after the snapshot: no request can start between the two
	if limit := int(elapsed/interval) + 1; during > limit {
		t.Errorf("%d requests in %v, above the rate limit's %d", during, elapsed, limit)
	}
	if err := w.Close(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	bs, reqs := h.snapshot()
	got, dropped := entries(bs)
	st := w.Stats()
	t.Logf("%d panics in %v: %d round trips to another actor meanwhile; %d requests (%d during the burst) carried %d failures and said %d were dropped; stats %+v",
		panics, elapsed, trips, reqs, during, got, dropped, st)
	if st.Queued+st.Dropped != panics || uint64(got) != st.Delivered || st.Failed != 0 {
		t.Errorf("stats %+v do not add up to %d panics with %d delivered", st, panics, got)
	}
	if got+int(dropped) != panics {
		t.Errorf("the batches carried %d failures and reported %d dropped: %d, want %d", got, dropped, got+int(dropped), panics)
	}
	if dropped == 0 {
		t.Error("no batch said that failures were dropped")
	}
	// Bounded: the queue holds at most queue failures; the burst sent
	// what the rate allowed, Close the rest in full batches.
	if limit := during + (queue+batch-1)/batch + 1; reqs > limit {
		t.Errorf("%d requests, want at most %d", reqs, limit)
	}
	for _, b := range bs {
		if len(b.Failures) > batch {
			t.Errorf("a batch of %d failures, above %d", len(b.Failures), batch)
		}
	}
}

func TestHangingWebhookDoesNotStallActors(t *testing.T) {
	// The server takes requests and never answers (until the test ends).
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	w, err := report.NewWebhook(report.WebhookConfig{URL: srv.URL, Queue: 10, Timeout: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, w, resume)
	bad, other := panicker(t, n), panicker(t, n)
	burst(t, n, bad, other, 2000)
	await.True(t, waitTimeout, "a POST to be in flight", func() bool { return w.Stats().Attempts >= 1 })
	const deadline = 300 * time.Millisecond
	start := time.Now()
	err = w.Close(ctxTimeout(t, deadline))
	took := time.Since(start)
	if err == nil {
		t.Error("Close reported success with a POST hanging")
	}
	// Close returns at its deadline, plus the time to cancel the POST.
	if took > deadline+5*time.Second {
		t.Errorf("Close took %v with a deadline of %v", took, deadline)
	}
	st := w.Stats()
	if st.Queued+st.Dropped != 2000 || st.Delivered != 0 || st.Failed != st.Queued {
		t.Errorf("stats %+v", st)
	}
	t.Logf("Close returned in %v: %v; stats %+v", took, err, st)
}

// panicky is a Reporter that panics.
type panicky struct{}

func (panicky) Report(actor.Failure) { panic("the reporter failed") }

func TestFanoutSurvivesAPanickingReporter(t *testing.T) {
	h := newHook(t, nil)
	w, err := report.NewWebhook(report.WebhookConfig{URL: h.srv.URL, Interval: time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fan := &report.Fanout{Reporters: []actor.Reporter{panicky{}, w}, Logger: quiet}
	n := newNode(t, fan, resume)
	bad, other := panicker(t, n), panicker(t, n)
	burst(t, n, bad, other, 100)
	if err := fan.Close(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Queued+st.Dropped != 100 || st.Delivered != st.Queued {
		t.Errorf("the webhook behind a panicking reporter: %+v", st)
	}
	// A panicking reporter set directly on the node does not hurt it either.
	n2, err := actor.NewNode(actor.Config{Addr: actor.MustAddr(1, 2, 4), Reporter: panicky{}, Supervisor: resume, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	burst(t, n2, panicker(t, n2), panicker(t, n2), 100)
}
