package hotfix_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeaf checks that hot-fix stays optional: none of the packages a
// game builds on links wazero, hotfix links neither admin nor app (its
// Loader is an admin.Reloader by its method set alone), and the guest
// packages a fix imports link nothing of the host (they must build for wasip1 on their own; package
// guest not even protobuf).
func TestLeaf(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	const mod = "github.com/guildkit/guild/"
	for _, c := range []struct {
		env  []string
		pkgs []string
		deny []string
	}{
		{nil, []string{mod + "app", mod + "actor", mod + "grain", mod + "gate", mod + "cluster", mod + "admin"}, []string{"github.com/tetratelabs/wazero", mod + "hotfix"}},
		// hotfix matches admin.Reloader structurally: it imports neither admin nor app.
		{nil, []string{mod + "hotfix"}, []string{mod + "admin\n", mod + "app\n"}},
		{[]string{"GOOS=wasip1", "GOARCH=wasm"}, []string{mod + "hotfix/guest"}, []string{"github.com/tetratelabs/wazero", mod + "hotfix\n", mod + "actor", "google.golang.org/protobuf"}},
		{[]string{"GOOS=wasip1", "GOARCH=wasm"}, []string{mod + "hotfix/guest/guestpb"}, []string{"github.com/tetratelabs/wazero", mod + "hotfix\n", mod + "actor"}},
	} {
		cmd := exec.Command(goTool, append([]string{"list", "-deps"}, c.pkgs...)...)
		cmd.Env = append(cmd.Environ(), c.env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", c.pkgs, err)
		}
		deps := string(out) + "\n"
		for _, d := range c.deny {
			if strings.Contains(deps, d) {
				t.Errorf("%s %s depend on %s", c.env, c.pkgs, strings.TrimSpace(d))
			}
		}
	}
}
