package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind.
// kcp-go, linked in by package client (console, bot), starts its timer
// scheduler at package initialisation for the life of the process: those
// goroutines are no leak of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
	)
}

// runCmd runs the guild command with args and returns its exit code and
// output.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func contains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := runCmd("demo", "-chat", "-players", "2", "-lines", "2")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	contains(t, "stdout", out,
		"A chat room on node 1.1.1: 2 players, 2 rounds.",
		"[room] alice joined (1 present)",
		"[room] bob joined (2 present)",
		"[room] alice crashed mid-sentence",
		"[room] the room is empty",
		"Summary",
		"actors spawned       6",
		"restarts             1",
		"README",
	)
	if errOut != "" {
		t.Errorf("stderr is not empty:\n%s", errOut)
	}
}

func TestDemoVerboseLogsThePanic(t *testing.T) {
	code, _, errOut := runCmd("demo", "-chat", "-players", "1", "-lines", "1", "-v")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errOut)
	}
	contains(t, "stderr", errOut, "actor panicked", "a bug in a player")
}

func TestDemoBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "-chat", "-players", "0"},
		{"demo", "-chat", "-players", "9"},
		{"demo", "-chat", "-lines", "-1"},
		{"demo", "-chat", "-lines", "many"},
		{"demo", "-nope"},
		{"demo", "extra"},
	} {
		code, out, errOut := runCmd(args...)
		if code != exitUsage {
			t.Errorf("%q: exit code %d, want %d", args, code, exitUsage)
		}
		if out != "" || errOut == "" {
			t.Errorf("%q: want a message on stderr only; stdout:\n%s\nstderr:\n%s", args, out, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd("version")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	contains(t, "stdout", out, "guild "+version, runtime.Version())
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}} {
		code, out, errOut := runCmd(args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%q: exit code %d, stderr %q; want 0 and nothing", args, code, errOut)
		}
		contains(t, "usage", out, "guild <command>", "demo", "version", "help")
	}
}

func TestHelpCommand(t *testing.T) {
	code, out, _ := runCmd("help", "demo")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	contains(t, "demo help", out, "usage: guild demo", "-players", "-lines")

	code, out, _ = runCmd("demo", "-h")
	if code != exitOK {
		t.Errorf("demo -h: exit code %d, want 0", code)
	}
	if out != "" {
		t.Errorf("demo -h wrote to stdout:\n%s", out)
	}

	code, _, errOut := runCmd("help", "nope")
	if code != exitUsage {
		t.Errorf("help nope: exit code %d, want %d", code, exitUsage)
	}
	contains(t, "stderr", errOut, `unknown command "nope"`)
}

func TestUnknownCommand(t *testing.T) {
	code, out, errOut := runCmd("launch")
	if code != exitUsage {
		t.Fatalf("exit code %d, want %d", code, exitUsage)
	}
	if out != "" {
		t.Errorf("stdout is not empty:\n%s", out)
	}
	contains(t, "stderr", errOut, `unknown command "launch"`, "The commands are:", "demo")
}

// TestCommandFlags checks that each command's flags are the flag set that
// its run parses: both print the same help.
func TestCommandFlags(t *testing.T) {
	for _, cmd := range commands() {
		if cmd.name == "help" {
			continue // help has no flags, and its own help text
		}
		var fromFlags strings.Builder
		cmd.flags(&fromFlags).Usage()
		code, _, fromRun := runCmd(cmd.name, "-h")
		if code != exitOK {
			t.Errorf("guild %s -h: exit code %d", cmd.name, code)
		}
		if fromFlags.String() != fromRun {
			t.Errorf("guild %s: the help of its flags:\n%s\nis not the help of its run:\n%s", cmd.name, fromFlags.String(), fromRun)
		}
	}
}
