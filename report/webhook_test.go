package report_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/report"
)

func TestWebhookDeliversPanicsAndEscalations(t *testing.T) {
	h := newHook(t, nil)
	w, err := report.NewWebhook(report.WebhookConfig{
		URL: h.srv.URL + "/hooks/guild", Source: "gate1", Interval: 10 * time.Millisecond,
		Headers: map[string]string{"Authorization": "Bearer s3cret", "X-Team": "ops"}, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctxTimeout(t, waitTimeout))
	// Top-level actors stop when they fail: the escalating parent once.
	n := newNode(t, w, actor.Supervisor{Decide: func(any) actor.Directive { return actor.Stop }})
	pid := panicker(t, n, actor.WithName(".room"))
	if err := n.Send(pid, move{Secret: "hunter2"}); err != nil {
		t.Fatal(err)
	}
	// An escalation: a child whose parent's strategy escalates.
	parent, err := n.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(actor.Started); ok {
			child, err := c.SpawnFunc(func(c *actor.Context) {
				if c.Message() == "fail" {
					panic("child gave up")
				}
			})
			if err != nil {
				t.Error(err)
			}
			_ = c.Send(child, "fail")
		}
	}, actor.WithSupervisor(actor.Supervisor{Decide: func(any) actor.Directive { return actor.Escalate }}))
	if err != nil {
		t.Fatal(err)
	}
	var got []report.Entry
	await.True(t, waitTimeout, "the panic and the escalation at the webhook", func() bool {
		bs, _ := h.snapshot()
		got = got[:0]
		for _, b := range bs {
			got = append(got, b.Failures...)
		}
		var p, e bool
		for _, f := range got {
			p = p || f.Reason == "bad move H"
			e = e || f.Kind == "escalation"
		}
		return p && e
	})
	bs, _ := h.snapshot()
	if bs[0].Source != "gate1" || bs[0].Sent.IsZero() {
		t.Errorf("batch source %q sent %v", bs[0].Source, bs[0].Sent)
	}
	for _, f := range got {
		switch {
		case f.Reason == "bad move H":
			if f.Kind != "panic" || f.Node != "1.2.3" || f.PID != pid.String() || len(f.Names) != 1 || f.Names[0] != ".room" ||
				f.Where != "receive" || f.MessageType != "report_test.move" || !strings.Contains(f.Stack, "goroutine") || f.Time.IsZero() {
				t.Errorf("panic entry %+v", f)
			}
		case f.Kind == "escalation":
			if f.Parent != parent.String() || f.Reason != "child gave up" || f.Where != "supervisor" || f.Stack != "" {
				t.Errorf("escalation entry %+v", f)
			}
		}
		if strings.Contains(f.Reason+f.Stack, "hunter2") {
			t.Errorf("an entry carries the message's contents: %+v", f)
		}
	}
	h.mu.Lock()
	hd := h.headers[0]
	h.mu.Unlock()
	if hd.Get("Authorization") != "Bearer s3cret" || hd.Get("X-Team") != "ops" {
		t.Errorf("headers %v", hd)
	}
}

func TestWebhookRetries5xxNot4xx(t *testing.T) {
	t.Run("5xx is retried", func(t *testing.T) {
		h := newHook(t, func(n int, _ *http.Request) int {
			if n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		w, err := report.NewWebhook(report.WebhookConfig{URL: h.srv.URL, Backoff: time.Millisecond, Retries: 3, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		w.Report(actor.Failure{Reason: "one"})
		await.True(t, waitTimeout, "the third try to get through", func() bool { return w.Stats().Delivered == 1 })
		if s := w.Stats(); s.Attempts != 3 || s.Batches != 1 || s.Failed != 0 {
			t.Errorf("stats %+v, want 3 attempts for 1 batch", s)
		}
		if err := w.Close(ctxTimeout(t, waitTimeout)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("4xx is not", func(t *testing.T) {
		h := newHook(t, func(n int, _ *http.Request) int {
			if n == 1 {
				return http.StatusUnauthorized
			}
			return http.StatusOK
		})
		w, err := report.NewWebhook(report.WebhookConfig{URL: h.srv.URL, Backoff: time.Millisecond, Interval: time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		w.Report(actor.Failure{Reason: "refused"})
		await.True(t, waitTimeout, "the refused batch to count as failed", func() bool { return w.Stats().Failed == 1 })
		w.Report(actor.Failure{Reason: "next"})
		await.True(t, waitTimeout, "the next batch", func() bool { return w.Stats().Delivered == 1 })
		if s := w.Stats(); s.Attempts != 2 {
			t.Errorf("stats %+v: the 401 was retried", s)
		}
		bs, _ := h.snapshot()
		if len(bs) != 1 || bs[0].Dropped != 1 || bs[0].Failures[0].Reason != "next" {
			t.Errorf("the next batch %+v does not say that one failure was lost", bs)
		}
		if err := w.Close(ctxTimeout(t, waitTimeout)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(ctxTimeout(t, waitTimeout)); err != report.ErrClosed {
			t.Errorf("second Close: %v, want ErrClosed", err)
		}
		w.Report(actor.Failure{})
		if s := w.Stats(); s.Dropped != 1 {
			t.Errorf("a report after Close: stats %+v, want it dropped", s)
		}
	})
}

func TestWebhookConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  report.WebhookConfig
		want string
	}{
		{report.WebhookConfig{}, "URL is required"},
		{report.WebhookConfig{URL: "ftp://x/y"}, "is not http or https"},
		{report.WebhookConfig{URL: "http:///path?token=abc"}, "has no host"},
		{report.WebhookConfig{URL: "http://x", Headers: map[string]string{"Bad Name": "v"}}, "not a header name"},
		{report.WebhookConfig{URL: "http://x", Headers: map[string]string{"X-A": "v\r\nInjected: 1"}}, "line break"},
		{report.WebhookConfig{URL: "http://x", Queue: -1}, "Queue -1 is negative"},
		{report.WebhookConfig{URL: "http://x", Interval: -time.Second}, "Interval -1s is negative"},
		{report.WebhookConfig{URL: "http://x", Timeout: -time.Second}, "Timeout -1s is negative"},
	} {
		w, err := report.NewWebhook(tc.cfg)
		if err == nil {
			_ = w.Close(ctxTimeout(t, waitTimeout))
			t.Errorf("%+v: no error, want %q", tc.cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "abc") {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestWebhookHonoursRetryAfter: a 429 Too Many Requests is retried (not
// dropped as a 4xx), no sooner than its Retry-After says.
func TestWebhookHonoursRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		at = append(at, time.Now())
		n := len(at)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(srv.Close)
	w, err := report.NewWebhook(report.WebhookConfig{URL: srv.URL, Backoff: time.Millisecond, Retries: 3, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w.Report(actor.Failure{Reason: "one"})
	await.True(t, waitTimeout, "the retry after the 429 to get through", func() bool { return w.Stats().Delivered == 1 })
	if s := w.Stats(); s.Attempts != 2 || s.Failed != 0 {
		t.Errorf("stats %+v, want 2 attempts, none failed", s)
	}
	mu.Lock()
	gap := at[1].Sub(at[0])
	mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
	if err := w.Close(ctxTimeout(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
}
