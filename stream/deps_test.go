package stream_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeaf: package stream is a leaf: the core packages (cluster, its
// transports, gate, rpc, grain) link neither it nor yamux, so a program
// that does not use streams does not carry them. It asks the go tool, and
// skips when there is none.
func TestLeaf(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH:", err)
	}
	pkgs := []string{"cluster", "cluster/etcd", "transport/tcp", "gate", "rpc", "grain", "client"}
	args := []string{"list", "-deps"}
	for _, p := range pkgs {
		args = append(args, "github.com/guildkit/guild/"+p)
	}
	out, err := exec.Command(goTool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		if dep == "github.com/guildkit/guild/stream" || strings.HasPrefix(dep, "github.com/hashicorp/yamux") {
			t.Errorf("a core package (%s) links %s", strings.Join(pkgs, ", "), dep)
		}
	}
}
