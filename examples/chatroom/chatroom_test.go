package chatroom

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run runs the demo into a buffer, failing the test on an error.
func run(t *testing.T, opts Options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := Run(ctx, &out, opts); err != nil {
		t.Fatalf("Run: %v\noutput so far:\n%s", err, out.String())
	}
	return out.String()
}

// inOrder checks that every want occurs in out, each after the previous one.
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("missing, or out of order: %q\ntranscript:\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}

func TestRunTranscript(t *testing.T) {
	out := run(t, Options{})
	inOrder(t, out,
		"A chat room on node 1.1.1: 3 players, 3 rounds.",
		"[room] alice joined (1 present)\n",
		"[room] bob joined (2 present)\n",
		"[room] carol joined (3 present)\n",
		`[room] a second alice tried to join and was turned away: chatroom: name taken: "alice"`,
		"[room] everyone is seated; the conversation starts\n",
		// Round 1: greetings built from the answer to a Request.
		"<alice> hello! I can see bob and carol here\n",
		"<bob> hello! I can see alice and carol here\n",
		"<carol> hello! I can see alice and bob here\n",
		// Round 2: alice's bug strikes; the supervisor restarts her.
		"[room] alice crashed mid-sentence and was restarted by the lobby's supervisor",
		"<bob> brb, the cat is on the keyboard\n",
		"<carol> who took the last health potion?\n",
		// Round 3: the restarted alice speaks again.
		"<alice> the boss drops a legendary sword, I swear\n",
		"<bob> lag spike, sorry\n",
		"<carol> gg everyone\n",
		"[room] that was the last round; time to go\n",
		// 3 rounds of 3 lines, less the one lost in the crash.
		"[room] alice left after hearing 8 lines (2 present)\n",
		"[room] bob left after hearing 8 lines (1 present)\n",
		"[room] carol's actor stopped without leaving; the room was watching it and removed carol (0 present)\n",
		"[room] the room is empty\n",
		"Summary\n",
		"actors spawned       7\n", // transcript, room, lobby, 3 players, 1 impostor
		"restarts             1\n",
		"dead letters         0\n",
		"actors left          0 ",
	)
	if n := strings.Count(out, "<alice>"); n != 2 {
		t.Errorf("alice spoke %d times, want 2 (one line lost in the crash)", n)
	}
}

func TestRunIsDeterministic(t *testing.T) {
	// The pace changes the timing of everything, and the number of clock
	// ticks, but not the transcript.
	first := run(t, Options{Players: 4, Lines: 4, Pace: time.Millisecond})
	second := run(t, Options{Players: 4, Lines: 4, Pace: 3 * time.Millisecond})
	if first != second {
		t.Fatalf("transcripts differ:\n%s\n---\n%s", first, second)
	}
}

func TestRunOnePlayerOneLine(t *testing.T) {
	// alice's bug strikes in her only round, and she is also the one who
	// stops without leaving.
	out := run(t, Options{Players: 1, Lines: 1, Pace: time.Millisecond})
	inOrder(t, out,
		"[room] alice joined (1 present)\n",
		"[room] a second alice tried to join and was turned away",
		"[room] alice crashed mid-sentence",
		"[room] that was the last round",
		"[room] alice's actor stopped without leaving; the room was watching it and removed alice (0 present)\n",
		"[room] the room is empty\n",
		"actors spawned       5\n",
	)
	if strings.Contains(out, "<alice>") {
		t.Errorf("alice spoke, but her only line was lost in the crash:\n%s", out)
	}
}

func TestRunManyPlayers(t *testing.T) {
	out := run(t, Options{Players: MaxPlayers, Lines: 2, Pace: time.Millisecond})
	inOrder(t, out,
		"[room] heidi joined (8 present)\n",
		"<alice> hello! I can see bob, carol, dave, erin, frank, grace and heidi here\n",
		"<heidi> hello! I can see alice, bob, carol, dave, erin, frank and grace here\n",
		"[room] alice crashed mid-sentence",
		"[room] alice left after hearing 15 lines (7 present)\n",
		"[room] heidi's actor stopped without leaving",
		"actors spawned      12\n",
	)
	if n := strings.Count(out, "\n<"); n != 15 {
		t.Errorf("%d lines said, want 15", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{
		{Players: -1},
		{Players: MaxPlayers + 1},
		{Lines: -1},
		{Lines: MaxLines + 1},
		{Pace: -time.Millisecond},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
		if err := Run(context.Background(), &bytes.Buffer{}, o); err == nil {
			t.Errorf("Run with %+v succeeded, want an error", o)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("the zero Options: %v", err)
	}
}

// signalWriter is a writer, safe for concurrent use, that can report when a
// line has been written and fail writes once told to.
type signalWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	when   string
	seen   chan struct{}
	failAt int // fail this write (counted from 1) and every later one; 0 never
	writes int
}

var errWrite = errors.New("test: write failed")

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.failAt > 0 && w.writes >= w.failAt {
		return 0, errWrite
	}
	w.buf.Write(p)
	if w.when != "" && bytes.Contains(p, []byte(w.when)) {
		close(w.seen)
		w.when = ""
	}
	return len(p), nil
}

func TestRunStopsWhenCtxEnds(t *testing.T) {
	// A slow pace keeps the conversation going; ctx ends once it starts.
	w := &signalWriter{when: "the conversation starts", seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, w, Options{Pace: time.Hour}) }()
	select {
	case <-w.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the conversation did not start")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
}

func TestRunReportsWriteErrors(t *testing.T) {
	for _, failAt := range []int{1, 2, 5} {
		w := &signalWriter{failAt: failAt}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := Run(ctx, w, Options{Pace: time.Millisecond})
		cancel()
		if !errors.Is(err, errWrite) {
			t.Errorf("write %d fails: Run = %v, want %v", failAt, err, errWrite)
		}
	}
}

func TestGreeting(t *testing.T) {
	for _, tc := range []struct {
		present []string
		want    string
	}{
		{[]string{"alice"}, "hello? nobody else is here"},
		{[]string{"alice", "bob"}, "hello! I can see bob here"},
		{[]string{"bob", "alice", "carol"}, "hello! I can see bob and carol here"},
	} {
		if got := greeting("alice", tc.present); got != tc.want {
			t.Errorf("greeting(alice, %v) = %q, want %q", tc.present, got, tc.want)
		}
	}
}
