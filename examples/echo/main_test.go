package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the example: every call is answered by the echo node, and
// the empty request comes back as InvalidArgument.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, 10, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"echo service on node 1.2.1, client on node 1.1.1",
		`call  1: "hello 1" from node 1.2.1`,
		`call 10: "hello 10" from node 1.2.1`,
		"an empty request: rpc: InvalidArgument: nothing to echo (code InvalidArgument)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
