package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// examplesPrefix is the import path of guild's examples: demo code that a
// production build of guild leaves out.
const examplesPrefix = "github.com/guildkit/guild/examples/"

// TestNoDemoBuild checks the build without the demo (-tags guild_nodemo,
// see examples/demo's package doc): it links no package under examples/,
// it builds, it lists no demo command, and guild demo says why there is
// none. The default build links the demo.
func TestNoDemoBuild(t *testing.T) {
	deps := func(tags ...string) []string {
		args := append([]string{"list", "-deps"}, tags...)
		out, err := exec.Command("go", append(args, ".")...).Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(append(args, "."), " "), err)
		}
		return strings.Fields(string(out))
	}
	for _, p := range deps("-tags", "guild_nodemo") {
		if strings.HasPrefix(p, examplesPrefix) {
			t.Errorf("guild built with -tags guild_nodemo links %s", p)
		}
	}
	var linked bool
	for _, p := range deps() {
		linked = linked || p == examplesPrefix+"demo"
	}
	if !linked {
		t.Errorf("the default build of guild does not link %sdemo", examplesPrefix)
	}
	if testing.Short() {
		t.Skip("builds guild")
	}

	bin := filepath.Join(t.TempDir(), "guild")
	if out, err := exec.Command("go", "build", "-tags", "guild_nodemo", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags guild_nodemo: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatalf("guild help: %v", err)
	}
	if strings.Contains(string(out), "\tdemo ") {
		t.Errorf("guild help lists demo in a build without it:\n%s", out)
	}
	for _, args := range [][]string{{"demo"}, {"demo", "-nodes", "3"}, {"help", "demo"}} {
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitUsage {
			t.Errorf("guild %s: %v, want exit code %d", strings.Join(args, " "), err, exitUsage)
		}
		contains(t, "guild "+strings.Join(args, " ")+"'s stderr", stderr.String(),
			"this build has no demo", "go run ./cmd/guild demo", "without -tags guild_nodemo")
	}
}
