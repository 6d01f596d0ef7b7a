//go:build unix

// Package proc runs child processes in tests, most often guild nodes in
// the test binary run again, and breaks them with real signals: SIGKILL (a
// crash), SIGSTOP and SIGCONT (a process frozen and thawed, as by a long GC
// pause, a debugger or an overloaded host), SIGTERM (an orderly stop). It
// is the multi-process companion of clustertest's in-process faults, whose
// Pause only freezes a node's network.
//
//	func TestNodeChild(t *testing.T) {
//		if os.Getenv("MY_NODE") == "" {
//			t.Skip("runs as a child of TestCrash")
//		}
//		... start a node, print "ready", serve until stdin closes ...
//	}
//
//	func TestCrash(t *testing.T) {
//		cfg := proc.Self("TestNodeChild", "MY_NODE=1")
//		cfg.Ready = "ready"
//		p := proc.Start(t, cfg)
//		p.Stop()  // SIGSTOP: its leases lapse, its peers see it die
//		p.Cont()  // SIGCONT
//		p.Kill()  // SIGKILL, and reaped
//	}
//
// Start logs every line the child writes (stdout and stderr) with t.Logf,
// timestamped, keeps the last lines of each for the test to read, and
// registers a t.Cleanup that kills and reaps the child if it is still
// running, so no process outlives its test. The package needs Unix
// signals.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guildkit/guild/internal/await"
)

// Defaults for the zero fields of a Config.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultTail         = 1000
)

// reapTimeout bounds the wait for a process to exit after SIGKILL.
const reapTimeout = 10 * time.Second

// maxLine is the longest line kept whole; a longer one is split.
const maxLine = 64 << 10

// Config says what to run.
type Config struct {
	// Name names the process in the log. Default: the base name of Path.
	Name string
	// Path is the program. Default: os.Args[0], the test binary.
	Path string
	// Args are its arguments.
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Dir is its working directory. Default: this process's.
	Dir string
	// Ready, optional, is part of the stdout line that says the process is
	// ready: Start waits for that line (see Process.ReadyLine).
	Ready string
	// ReadyTimeout bounds Start's wait for Ready: default 30s.
	ReadyTimeout time.Duration
	// Tail is how many lines of each of stdout and stderr are kept for
	// Stdout and Stderr: default 1000.
	Tail int
	// Quiet stops Start from logging each line as it arrives; the kept
	// lines are logged at the end only if the test failed.
	Quiet bool
}

// Self returns a Config that runs the test binary again with only the test
// named test (-test.run=^test$), with env added to the environment: the
// child side of a multi-process test is a Test function that does nothing
// (t.Skip) unless an environment variable is set.
func Self(test string, env ...string) Config {
	return Config{
		Name: test,
		Path: os.Args[0],
		Args: []string{"-test.run=^" + test + "$", "-test.count=1"},
		Env:  env,
	}
}

// Process is a child process started by Start. Its methods must be called
// from the test goroutine, except Pid, Name, Exited, Err, Stdout, Stderr,
// Stdin and ReadyLine, which are safe anywhere.
type Process struct {
	t      testing.TB
	cfg    Config
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *lineWriter
	stderr *lineWriter
	exited chan struct{} // closed once the process has exited and its output is read
	err    error         // cmd.Wait's result, set before exited is closed

	mu      sync.Mutex
	out     tail // stdout lines
	errs    tail // stderr lines
	cursor  int  // number of the first stdout line WaitLine looks at
	ready   string
	changed chan struct{} // closed, and replaced, when a stdout line arrives or the process exits
}

// Start starts the process described by cfg and, if cfg.Ready is set,
// waits for its ready line. It fails t (t.Fatal) if the process cannot
// start, exits first, or is not ready within cfg.ReadyTimeout, logging the
// last lines it wrote. Call it from the test goroutine.
func Start(t testing.TB, cfg Config) *Process {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = os.Args[0]
	}
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Path)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Tail <= 0 {
		cfg.Tail = DefaultTail
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	cmd.Dir = cfg.Dir
	// A grandchild that keeps the output pipes open must not hang Wait.
	cmd.WaitDelay = 5 * time.Second
	p := &Process{
		t:       t,
		cfg:     cfg,
		cmd:     cmd,
		exited:  make(chan struct{}),
		out:     tail{max: cfg.Tail},
		errs:    tail{max: cfg.Tail},
		changed: make(chan struct{}),
	}
	p.stdout = &lineWriter{fn: func(s string) { p.line(&p.out, "stdout", s) }}
	p.stderr = &lineWriter{fn: func(s string) { p.line(&p.errs, "stderr", s) }}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("proc: %s: %v", cfg.Name, err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("proc: start %s: %v", cfg.Name, err)
	}
	go p.wait()
	t.Cleanup(p.cleanup)
	t.Logf("%s proc: %s started, pid %d", stamp(), cfg.Name, cmd.Process.Pid)
	if cfg.Ready != "" {
		line, err := p.waitLine(cfg.ReadyTimeout, cfg.Ready)
		if err != nil {
			p.logTail()
			t.Fatalf("proc: %s: waiting for its ready line (%q): %v", cfg.Name, cfg.Ready, err)
		}
		p.mu.Lock()
		p.ready = line
		p.mu.Unlock()
	}
	return p
}

// wait reaps the process.
func (p *Process) wait() {
	err := p.cmd.Wait()
	p.stdout.flush()
	p.stderr.flush()
	p.err = err
	p.t.Logf("%s proc: %s exited: %s", stamp(), p.cfg.Name, describe(err))
	p.mu.Lock()
	close(p.exited)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// describe says how a process ended.
func describe(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
		}
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// line records a line of stream s.
func (p *Process) line(tl *tail, s, line string) {
	if !p.cfg.Quiet {
		p.t.Logf("%s %s %s: %s", stamp(), p.cfg.Name, s, line)
	}
	p.mu.Lock()
	tl.add(line)
	if tl == &p.out {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
}

// cleanup kills and reaps the process if it still runs, and logs its last
// lines if the test failed and they were not logged already.
func (p *Process) cleanup() {
	_ = p.stdin.Close()
	if !p.reap() {
		p.t.Errorf("proc: %s (pid %d) still running %v after SIGKILL", p.cfg.Name, p.Pid(), reapTimeout)
	}
	if p.t.Failed() && p.cfg.Quiet {
		p.logTail()
	}
}

// reap sends SIGKILL unless the process has exited, and waits for it to
// exit. It reports false if it did not within reapTimeout.
func (p *Process) reap() bool {
	select {
	case <-p.exited:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL) // fails only if it has exited
	select {
	case <-p.exited:
		return true
	case <-time.After(reapTimeout):
		return false
	}
}

// logTail logs the kept lines of both streams.
func (p *Process) logTail() {
	for _, s := range []struct {
		name  string
		lines []string
	}{{"stdout", p.Stdout()}, {"stderr", p.Stderr()}} {
		p.t.Logf("proc: %s: last %d lines of %s:\n%s", p.cfg.Name, len(s.lines), s.name, strings.Join(s.lines, "\n"))
	}
}

// Name returns the process's name in the log.
func (p *Process) Name() string { return p.cfg.Name }

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stdin returns the process's standard input. Closing it is the usual way
// to ask a child that reads it to finish.
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// ReadyLine returns the line that matched Config.Ready ("" without Ready).
func (p *Process) ReadyLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// Stdout returns the kept lines of standard output (the last Config.Tail),
// without their line ends.
func (p *Process) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.all()
}

// Stderr returns the kept lines of standard error.
func (p *Process) Stderr() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errs.all()
}

// Exited returns a channel that is closed once the process has exited and
// all its output has been read.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err returns how the process ended, as exec.Cmd.Wait reports it (nil for
// exit status 0, an *exec.ExitError otherwise); nil while it runs.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// WaitLine waits until the process writes a stdout line containing substr
// and returns it. It looks only at lines after the previous match of
// WaitLine (or the ready line), so "ping 1" then "ping 2" can be awaited in
// turn. It fails t (t.Fatal) if the process exits, or timeout passes,
// first.
func (p *Process) WaitLine(timeout time.Duration, substr string) string {
	p.t.Helper()
	line, err := p.waitLine(timeout, substr)
	if err != nil {
		p.t.Fatalf("proc: %s: waiting for a line with %q: %v", p.cfg.Name, substr, err)
	}
	return line
}

// waitLine is WaitLine, with an error instead of t.Fatal.
func (p *Process) waitLine(timeout time.Duration, substr string) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		line, next, ok := p.out.find(p.cursor, substr)
		if ok {
			p.cursor = next
		}
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return line, nil
		}
		select {
		case <-p.exited:
			// Lines written before the exit are all in by now.
			p.mu.Lock()
			line, next, ok := p.out.find(p.cursor, substr)
			if ok {
				p.cursor = next
			}
			p.mu.Unlock()
			if ok {
				return line, nil
			}
			return "", fmt.Errorf("the process exited (%s)", describe(p.err))
		case <-changed:
		case <-timer.C:
			return "", fmt.Errorf("not written within %v", timeout)
		}
	}
}

// signal sends sig, failing the test if the process has exited.
func (p *Process) signal(sig syscall.Signal, what string) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("proc: %s: %s: %v", p.cfg.Name, what, err)
	}
	p.t.Logf("%s proc: %s: %s (pid %d)", stamp(), p.cfg.Name, what, p.Pid())
}

// Kill sends SIGKILL and waits until the process has exited: a crash.
// Killing a process that has exited does nothing.
func (p *Process) Kill() {
	p.t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	p.t.Logf("%s proc: %s: SIGKILL (pid %d)", stamp(), p.cfg.Name, p.Pid())
	if !p.reap() {
		p.t.Fatalf("proc: %s still running %v after SIGKILL", p.cfg.Name, reapTimeout)
	}
}

// Stop sends SIGSTOP: the process freezes, its sockets stay open and
// nothing it should send is sent, until Cont. The kernel stops a process
// asynchronously; on Linux, Stop returns only once every thread of the
// process is stopped (as /proc shows), elsewhere once the signal is sent.
// It fails t if the process has exited or does not stop within 10s.
func (p *Process) Stop() {
	p.t.Helper()
	p.signal(syscall.SIGSTOP, "SIGSTOP")
	p.awaitStopped(true)
}

// Cont sends SIGCONT: a stopped process runs again. On Linux it returns
// once the process runs again (as /proc shows). It fails t if the process
// has exited.
func (p *Process) Cont() {
	p.t.Helper()
	p.signal(syscall.SIGCONT, "SIGCONT")
	p.awaitStopped(false)
}

// awaitStopped waits until stopped(p.Pid()) is want, where /proc tells.
func (p *Process) awaitStopped(want bool) {
	p.t.Helper()
	state := "stopped"
	if !want {
		state = "running"
	}
	await.True(p.t, reapTimeout, fmt.Sprintf("%s to be %s", p.cfg.Name, state), func() bool {
		select {
		case <-p.exited:
			return true
		default:
		}
		got, known := stopped(p.Pid())
		return !known || got == want
	})
	select {
	case <-p.exited:
		p.t.Fatalf("proc: %s exited (%s)", p.cfg.Name, describe(p.err))
	default:
	}
}

// stopped reports whether every thread of process pid is stopped, from
// /proc/<pid>/task/*/stat; known is false where there is no such file
// (not Linux, or the process is gone).
func stopped(pid int) (all, known bool) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false, false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			continue // the thread ended
		}
		// The state follows the command name, in parentheses that may
		// hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, false
		}
		switch b[i+2] {
		case 'T', 't', 'Z', 'X': // stopped, traced, or gone
		default:
			return false, true
		}
	}
	return true, true
}

// Terminate asks the process to end: SIGTERM, then SIGCONT so that a
// stopped process can act on it. If it has not exited after timeout it is
// killed (SIGKILL), which Terminate logs. It returns how the process ended
// (Err). Terminating a process that has exited just returns Err.
func (p *Process) Terminate(timeout time.Duration) error {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.err
	default:
	}
	p.t.Logf("%s proc: %s: SIGTERM (pid %d)", stamp(), p.cfg.Name, p.Pid())
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
	}
	p.t.Logf("%s proc: %s: still running %v after SIGTERM; SIGKILL", stamp(), p.cfg.Name, timeout)
	if !p.reap() {
		p.t.Fatalf("proc: %s still running %v after SIGKILL", p.cfg.Name, reapTimeout)
	}
	return p.err
}

// stamp is the time of day in the log.
func stamp() string { return time.Now().Format("15:04:05.000") }

// tail keeps the last max lines of a stream, numbered from 0.
type tail struct {
	max   int
	lines []string
	first int // number of lines[0]
}

func (t *tail) add(s string) {
	t.lines = append(t.lines, s)
	if len(t.lines) >= 2*t.max { // compact now and then: amortized O(1)
		drop := len(t.lines) - t.max
		t.lines = append([]string(nil), t.lines[drop:]...)
		t.first += drop
	}
}

func (t *tail) all() []string {
	return append([]string(nil), t.lines[max(0, len(t.lines)-t.max):]...)
}

// find returns the first line numbered from or later that contains substr,
// and the number after it.
func (t *tail) find(from int, substr string) (string, int, bool) {
	for i := max(from-t.first, 0); i < len(t.lines); i++ {
		if strings.Contains(t.lines[i], substr) {
			return t.lines[i], t.first + i + 1, true
		}
	}
	return "", 0, false
}

// lineWriter calls fn for each line written to it. exec.Cmd writes from
// one goroutine; flush runs after it has finished.
type lineWriter struct {
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.buf = append(w.buf, b...)
			if len(w.buf) >= maxLine {
				w.flush()
			}
			break
		}
		w.buf = append(w.buf, b[:i]...)
		b = b[i+1:]
		w.flush()
	}
	return n, nil
}

// flush emits what is buffered as a line, if anything.
func (w *lineWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	w.fn(strings.TrimSuffix(string(w.buf), "\r"))
	w.buf = w.buf[:0]
}
