//go:build unix

package proc_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/guildkit/guild/cluster/clustertest/proc"
	"github.com/guildkit/guild/internal/await"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// A child: its stdin reader may still run when it ends.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// childEnv selects what TestProcChild does: echo, stubborn or die.
const childEnv = "GUILD_PROC_TEST_CHILD"

const timeout = 10 * time.Second

// TestProcChild is the child process of the tests below; it does nothing
// unless childEnv is set.
//
//	echo      print "ready <pid>", answer "ping N" with "pong N", print
//	          "bye" and end on SIGTERM or at the end of stdin
//	stubborn  as echo, but ignore SIGTERM
//	die       write to stderr and exit with status 3 before it is ready
func TestProcChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	switch mode {
	case "":
		t.Skip("the child process of the proc tests")
	case "die":
		fmt.Fprintln(os.Stderr, "dying on purpose")
		os.Exit(3)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	}
	term := make(chan os.Signal, 1)
	if mode == "echo" {
		signal.Notify(term, syscall.SIGTERM)
		defer signal.Stop(term)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	fmt.Println("ready", os.Getpid())
	for {
		select {
		case <-term:
			fmt.Println("bye")
			return
		case l, ok := <-lines:
			if !ok {
				fmt.Println("bye")
				return
			}
			if n, ok := strings.CutPrefix(l, "ping "); ok {
				fmt.Println("pong", n)
			}
		}
	}
}

func child(mode string) proc.Config {
	cfg := proc.Self("TestProcChild", childEnv+"="+mode)
	cfg.Ready = "ready "
	cfg.ReadyTimeout = timeout
	return cfg
}

func ping(t *testing.T, p *proc.Process, n int) {
	t.Helper()
	if _, err := fmt.Fprintf(p.Stdin(), "ping %d\n", n); err != nil {
		t.Fatal(err)
	}
}

// signaled returns the signal that ended the process, if one did.
func signaled(err error) (syscall.Signal, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
}

// TestStopContKill: a child that printed its ready line answers; stopped
// (SIGSTOP), it does not; continued (SIGCONT), it answers what it was sent
// meanwhile; killed (SIGKILL), it is gone.
func TestStopContKill(t *testing.T) {
	p := proc.Start(t, child("echo"))
	if want := "ready " + strconv.Itoa(p.Pid()); p.ReadyLine() != want {
		t.Fatalf("ready line %q, want %q", p.ReadyLine(), want)
	}
	ping(t, p, 1)
	p.WaitLine(timeout, "pong 1")

	p.Stop()
	ping(t, p, 2)
	await.Always(t, 300*time.Millisecond, "the stopped child to stay silent", func() bool {
		return !slices.Contains(p.Stdout(), "pong 2")
	})
	if runtime.GOOS == "linux" {
		if st := procState(p.Pid()); st != "T" {
			t.Fatalf("the stopped child's state is %q, want T", st)
		}
	}

	p.Cont()
	p.WaitLine(timeout, "pong 2")
	ping(t, p, 3)
	p.WaitLine(timeout, "pong 3")

	p.Kill()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the child exited")
	}
	if sig, ok := signaled(p.Err()); !ok || sig != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, want killed by SIGKILL", p.Err())
	}
	p.Kill() // again: nothing happens
}

// procState returns the state letter of pid in /proc/<pid>/stat.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// TestTerminate: SIGTERM ends a child that handles it, even a stopped one
// (Terminate continues it); one that ignores it is killed after the
// timeout.
func TestTerminate(t *testing.T) {
	p := proc.Start(t, child("echo"))
	p.Stop()
	if err := p.Terminate(timeout); err != nil {
		t.Fatalf("Terminate: %v, want a clean exit", err)
	}
	if !slices.Contains(p.Stdout(), "bye") {
		t.Fatalf("stdout %q has no bye", p.Stdout())
	}

	s := proc.Start(t, child("stubborn"))
	start := time.Now()
	err := s.Terminate(300 * time.Millisecond)
	if sig, ok := signaled(err); !ok || sig != syscall.SIGKILL {
		t.Fatalf("Terminate of a child that ignores SIGTERM: %v, want killed by SIGKILL", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("the stubborn child was killed after %v, before the timeout", d)
	}
}

// TestCleanupReapsAStoppedChild: the cleanup of Start kills a child that
// the test left stopped.
func TestCleanupReapsAStoppedChild(t *testing.T) {
	var p *proc.Process
	t.Run("leave it stopped", func(t *testing.T) {
		p = proc.Start(t, child("echo"))
		p.Stop()
	})
	select {
	case <-p.Exited():
	default:
		t.Fatal("the child still runs after its test's cleanup")
	}
	if sig, ok := signaled(p.Err()); !ok || sig != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, want killed by SIGKILL", p.Err())
	}
}

// fakeT records Start's failure instead of failing this test. Logf is
// called from the child's output goroutines too.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	msg      string
	logs     []string
	cleanups []func()
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg != ""
}

func (f *fakeT) Logf(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, a...))
}

func (f *fakeT) Errorf(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msg = fmt.Sprintf(format, a...)
}

func (f *fakeT) Fatalf(format string, a ...any) {
	f.Errorf(format, a...)
	runtime.Goexit()
}

// TestExitBeforeReady: Start fails, saying so, when the child exits before
// its ready line, and the failure log holds what the child wrote.
func TestExitBeforeReady(t *testing.T) {
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		proc.Start(f, child("die"))
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(f.msg, "exited (exit status 3)") {
		t.Fatalf("Start's failure: %q", f.msg)
	}
	if !slices.ContainsFunc(f.logs, func(l string) bool { return strings.Contains(l, "dying on purpose") }) {
		t.Fatalf("the log has no line of the child's stderr: %q", f.logs)
	}
}
