package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/report"
)

// A node whose panics are POSTed to a webhook. (Here the webhook is a
// test server that prints what it receives.)
func ExampleNewWebhook() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b report.Batch
		_ = json.NewDecoder(r.Body).Decode(&b)
		for _, f := range b.Failures {
			node, _, _ := strings.Cut(f.PID, "/") // the actor's PID: its node, then its serial
			fmt.Printf("%s from %s: an actor of %s in %s handling %s: %s\n", f.Kind, b.Source, node, f.Where, f.MessageType, f.Reason)
		}
	}))
	defer srv.Close()

	hook, err := report.NewWebhook(report.WebhookConfig{
		URL:      srv.URL,
		Headers:  map[string]string{"Authorization": "Bearer example-token"},
		Source:   "world-1",
		Interval: 5 * time.Second, // at most one POST per 5 s; bursts are batched
	})
	if err != nil {
		panic(err)
	}
	node, err := actor.NewNode(actor.Config{
		Addr:     actor.MustAddr(1, 2, 1),
		Reporter: hook,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	pid, _ := node.SpawnFunc(func(c *actor.Context) {
		if c.Message() == "divide" {
			var zero int
			_ = 1 / zero
		}
	})
	_ = node.Send(pid, "divide")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = node.Shutdown(ctx) // the actors first,
	_ = hook.Close(ctx)    // then the reporter: it delivers what is queued
	// Output:
	// panic from world-1: an actor of 1.2.1 in receive handling string: runtime error: integer divide by zero
}
