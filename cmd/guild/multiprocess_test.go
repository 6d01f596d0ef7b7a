package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/internal/heavytest"
	"github.com/guildkit/guild/transport"
)

// Bounds of TestMultiProcessKill9.
const (
	mpReadyTimeout = 30 * time.Second // a process prints its ready line
	mpCallTimeout  = 10 * time.Second // each call of the load loops
	mpFailFast     = 2 * time.Second  // a call failing because its peer died
	mpTTL          = time.Second      // every node's lease TTL
)

// nodeProc is a guild node process started by a test.
type nodeProc struct {
	name   string
	cmd    *exec.Cmd
	ready  readyEvent
	exited chan struct{} // closed when the process has exited and its output is copied
}

// kill sends SIGKILL and waits until the process has exited. It is safe to
// call twice.
func (p *nodeProc) kill(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: still running 10s after SIGKILL", p.name)
	}
}

// startNodeProc starts "guild node args..." and waits for its ready line.
// Its stderr goes to the test log, line by line. A cleanup kills it.
func startNodeProc(t *testing.T, bin, name string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"node"}, args...)...)
	ready := make(chan string, 1)
	cmd.Stdout = &lineWriter{fn: func(line string) {
		select {
		case ready <- line:
		default:
			t.Logf("%s stdout: %s", name, line)
		}
	}}
	cmd.Stderr = &lineWriter{fn: func(line string) { t.Logf("%s: %s", name, line) }}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		t.Logf("%s exited: %v", name, err)
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case line := <-ready:
		if err := json.Unmarshal([]byte(line), &p.ready); err != nil || p.ready.Event != "ready" {
			t.Fatalf("%s: ready line %q: %v", name, line, err)
		}
	case <-p.exited:
		t.Fatalf("%s exited before it was ready", name)
	case <-time.After(mpReadyTimeout):
		t.Fatalf("%s: no ready line after %v", name, mpReadyTimeout)
	}
	if p.ready.PID != cmd.Process.Pid {
		t.Fatalf("%s: ready line says pid %d, the process is %d", name, p.ready.PID, cmd.Process.Pid)
	}
	t.Logf("%s ready: %+v", name, p.ready)
	return p
}

// buildGuild builds this command into a temporary directory.
func buildGuild(t *testing.T) string {
	t.Helper()
	bin := t.TempDir() + "/guild"
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// callResult is one call made by a load loop of TestMultiProcessKill9.
type callResult struct {
	start, end time.Time
	reply      string
	err        error
}

// loadLoop calls call again and again until stop is closed, and returns
// what happened on done.
func loadLoop(stop <-chan struct{}, call func() (string, error)) <-chan []callResult {
	done := make(chan []callResult, 1)
	go func() {
		var rs []callResult
		for {
			select {
			case <-stop:
				done <- rs
				return
			default:
			}
			r := callResult{start: time.Now()}
			r.reply, r.err = call()
			r.end = time.Now()
			rs = append(rs, r)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return done
}

// relayElapsed returns the elapsed time at the end of a diag "call" reply.
func relayElapsed(reply string) (time.Duration, bool) {
	i := strings.LastIndexByte(reply, ' ')
	us, err := strconv.ParseInt(reply[i+1:], 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(us) * time.Microsecond, true
}

// TestMultiProcessKill9 runs a cluster of three guild node processes and a
// node in the test process, kills one process with SIGKILL while the others
// call it, checks that the calls fail fast and that the membership drops it
// within its TTL, then restarts it and checks that it is reachable again.
func TestMultiProcessKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and runs several processes")
	}
	heavytest.Serialize(t)
	bin := buildGuild(t)
	ttl := mpTTL.String()
	a := startNodeProc(t, bin, "A", "-addr", "1.1.1", "-master", "127.0.0.1:0", "-ttl", ttl)
	endpoints := strings.Join(a.ready.Etcd, ",")
	b := startNodeProc(t, bin, "B", "-addr", "1.1.2", "-etcd", endpoints, "-ttl", ttl)
	cArgs := []string{"-addr", "1.1.3", "-etcd", endpoints, "-ttl", ttl}
	c := startNodeProc(t, bin, "C", cArgs...)

	cAddr := actor.MustAddr(1, 1, 3)
	n, m := joinCluster(t, a.ready.Etcd, actor.MustAddr(1, 1, 9), mpTTL)
	an := n.Actor()
	hasC := func() bool {
		return slices.ContainsFunc(m.Members(), func(mb cluster.Member) bool { return mb.Addr == cAddr })
	}
	waitFor(t, 10*time.Second, "4 members", func() bool { return len(m.Members()) == 4 })

	const cName = "guild.diag/1.1.3"
	pong, err := diagRequest(an, cName, "ping", mpCallTimeout)
	if err != nil || !strings.HasPrefix(pong, "pong 1.1.3 ") {
		t.Fatalf("ping C: %q, %v", pong, err)
	}
	oldStart := strings.Fields(pong)[2]
	bPID, err := an.Lookup(context.Background(), "guild.diag/1.1.2")
	if err != nil {
		t.Fatal(err)
	}
	relay := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), mpCallTimeout+5*time.Second)
		defer cancel()
		return callString(ctx, an, bPID, "call "+cName+" "+mpCallTimeout.String())
	}
	if got, err := relay(); err != nil || !strings.HasPrefix(got, "ok pong 1.1.3 ") {
		t.Fatalf("B calls C: %q, %v", got, err)
	}

	// Load: the test's node calls C, and has B call C, until C is dropped.
	stop := make(chan struct{})
	direct := loadLoop(stop, func() (string, error) { return diagRequest(an, cName, "ping", mpCallTimeout) })
	relayed := loadLoop(stop, relay)
	time.Sleep(200 * time.Millisecond) // both loops are running
	c.kill(t)
	killed := time.Now()

	waitFor(t, mpTTL+3*time.Second, "the membership to drop C", func() bool { return !hasC() })
	dropped := time.Since(killed)
	time.Sleep(500 * time.Millisecond) // calls made after the drop
	close(stop)
	var directRs, relayedRs []callResult
	for _, ch := range []<-chan []callResult{direct, relayed} {
		select {
		case rs := <-ch:
			if ch == direct {
				directRs = rs
			} else {
				relayedRs = rs
			}
		case <-time.After(mpCallTimeout + 10*time.Second):
			t.Fatal("a load loop did not stop")
		}
	}

	// Direct calls: every call that ended after the kill failed, with a
	// lost peer or a missing actor or name, and none of them took long.
	var firstFail time.Duration
	after := 0
	for _, r := range directRs {
		if r.end.Before(killed) {
			continue
		}
		after++
		switch {
		case r.err == nil:
			if r.start.After(killed) {
				t.Errorf("a call started %v after the kill succeeded: %q", r.start.Sub(killed), r.reply)
			}
			continue
		case !errors.Is(r.err, transport.ErrPeerLost) && !errors.Is(r.err, actor.ErrActorNotFound) &&
			!errors.Is(r.err, actor.ErrNameNotFound):
			t.Errorf("a call started %v after the kill failed with %v", r.start.Sub(killed), r.err)
		}
		if d := r.end.Sub(r.start); d > mpFailFast {
			t.Errorf("a call started %v after the kill took %v to fail (%v)", r.start.Sub(killed), d, r.err)
		}
		if firstFail == 0 {
			firstFail = r.end.Sub(killed)
			t.Logf("first failed call: %v", r.err)
		}
	}
	if after == 0 || firstFail == 0 {
		t.Errorf("no direct call ended after the kill (%d calls in all)", len(directRs))
	} else if firstFail > mpFailFast {
		t.Errorf("the first call failed %v after the kill, want < %v", firstFail, mpFailFast)
	}

	// Relayed calls: B reports "err ..." quickly for every call after the kill.
	relayedAfter := 0
	for _, r := range relayedRs {
		if r.end.Before(killed) {
			continue
		}
		relayedAfter++
		if r.err != nil {
			t.Errorf("B's diag actor failed: %v", r.err)
			continue
		}
		el, ok := relayElapsed(r.reply)
		switch {
		case !ok:
			t.Errorf("B's reply %q has no elapsed time", r.reply)
		case strings.HasPrefix(r.reply, "ok "):
			if r.start.After(killed) {
				t.Errorf("B's call started %v after the kill succeeded: %q", r.start.Sub(killed), r.reply)
			}
		case el > mpFailFast:
			t.Errorf("B's call started %v after the kill took %v to fail: %q", r.start.Sub(killed), el, r.reply)
		}
	}
	if relayedAfter == 0 {
		t.Errorf("no relayed call ended after the kill (%d calls in all)", len(relayedRs))
	}
	t.Logf("kill -9 detected: first call failed after %v, membership dropped after %v (%d direct and %d relayed calls after the kill)",
		firstFail, dropped, after, relayedAfter)

	// Restart C: its name comes back, held by the new process.
	restarted := time.Now()
	c = startNodeProc(t, bin, "C2", cArgs...)
	var newPong string
	waitFor(t, 10*time.Second, "the name of C's diag actor to reach the new C", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		pid, err := an.Lookup(ctx, cName)
		if err != nil || pid.Node != cAddr {
			return false
		}
		got, err := callString(ctx, an, pid, "ping")
		if err != nil || !strings.HasPrefix(got, "pong 1.1.3 ") || strings.Fields(got)[2] == oldStart {
			return false
		}
		newPong = got
		return true
	})
	if got, err := diagRequest(an, cName, "ping", mpCallTimeout); err != nil || got != newPong {
		t.Errorf("ping the new C: %q, %v; want %q", got, err, newPong)
	}
	waitFor(t, 10*time.Second, "B to reach the new C", func() bool {
		got, err := relay()
		return err == nil && strings.HasPrefix(got, "ok "+newPong+" ")
	})
	t.Logf("C restarted: reachable again from the test and from B %v after its start", time.Since(restarted))

	for _, p := range []*nodeProc{a, b, c} {
		select {
		case <-p.exited:
			t.Errorf("%s exited during the test", p.name)
		default:
		}
	}
	if err := n.Close(); err != nil {
		t.Error(err)
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
