package hotfix_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/hotfix"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// An actor whose logic is a module of a directory, fixed while it runs:
// counter1 adds 1 per message; counter2, the fix, adds 2 and answers
// with a typed reply. The count carries over the fix.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "fixes")
	defer os.RemoveAll(dir)
	// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o $dir/counter.wasm ./testdata/counter1
	if err := exampleBuild("counter1", filepath.Join(dir, "counter.wasm")); err != nil {
		fmt.Println(err)
		return
	}

	engine, err := hotfix.NewEngine(ctx, hotfix.Config{MemoryLimit: 64 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close(ctx)
	fixes := hotfix.NewLoader(engine, dir) // counter.wasm serves the handler "counter"
	if _, err := fixes.Reload(ctx); err != nil {
		fmt.Println(err)
		return
	}

	node, _ := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	defer node.Close()
	counter := fixes.Handler("counter")
	pid, _ := node.Spawn(func() actor.Actor { return hotfix.NewActor(counter, nil) })
	call := func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		reply, err := node.Call(ctx, pid, &hotfix.Message{Type: "inc"})
		switch r := reply.(type) {
		case *hotfix.Message: // a reply of no type the node knows: raw bytes
			fmt.Printf("raw %q\n", r.Data)
		case *wrapperspb.StringValue: // a reply that names its protobuf type
			fmt.Printf("typed %q\n", r.GetValue())
		default:
			fmt.Println(err)
		}
	}
	call()
	call()

	// The fix: a new file, then a reload (guild's reload command, or a
	// watcher, would call it).
	if err := exampleBuild("counter2", filepath.Join(dir, "counter.wasm")); err != nil {
		fmt.Println(err)
		return
	}
	status, err := fixes.Reload(ctx)
	fmt.Println(status[0].Name, status[0].Changed, err)
	call()
	// Output:
	// raw "v1:1"
	// raw "v1:2"
	// counter true <nil>
	// typed "v2:4"
}

// exampleBuild builds testdata/name into path (the test binary builds
// each fix once).
func exampleBuild(name, path string) error {
	wasm, skip, err := buildWasm(name, true)
	if skip != "" {
		return fmt.Errorf("%s", skip)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, wasm, 0o644)
}
