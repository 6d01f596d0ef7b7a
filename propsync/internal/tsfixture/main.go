// Command tsfixture feeds the TypeScript SDK's cross-language test of
// property sync (clients/ts/test/propsync-cross.test.ts): it makes seeded
// random changes to a propsync test state (propsync/internal/testpb's
// Player), diffs each turn with a propsync.Tracker, and writes what a
// client must see, one JSON object a line:
//
//	{"snapshot": "<Delta, base64>", "state": "<Player, base64>", "paths": [""]}
//	{"delta": "<Delta, base64>", "state": "<Player, base64>", "paths": ["stats.hp", ...]}
//
// first the snapshot, then one line per turn that made a delta, and a
// snapshot again every 100 turns (over the state the replica holds). state is
// the state as the client must hold it afterwards (private fields removed,
// encoded deterministically), and paths are the changed paths that the Go
// propsync.Replica reported for the delta, which the TypeScript Replica
// must report too, in the same order.
//
//	go run ./propsync/internal/tsfixture -seed 1 -turns 500
//
// With -serve it is instead a server for the end-to-end test
// (clients/ts/test/propsync-e2e.test.ts): see serve.go.
//
// It lives under propsync/ because it needs the internal testpb.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/mutate"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

func main() {
	seed := flag.Uint64("seed", 1, "the random seed")
	turns := flag.Int("turns", 500, "how many turns of changes")
	serveFlag := flag.Bool("serve", false, "serve a synced player grain behind a gateway (serve.go)")
	flag.Parse()
	do := func() error { return run(*seed, *turns) }
	if *serveFlag {
		do = serve
	}
	if err := do(); err != nil {
		fmt.Fprintln(os.Stderr, "tsfixture:", err)
		os.Exit(1)
	}
}

type line struct {
	Snapshot string   `json:"snapshot,omitempty"`
	Delta    string   `json:"delta,omitempty"`
	State    string   `json:"state"`
	Paths    []string `json:"paths,omitempty"`
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func encode(m proto.Message) (string, error) {
	b, err := deterministic.Marshal(m)
	return base64.StdEncoding.EncodeToString(b), err
}

func run(seed uint64, turns int) error {
	r := rand.New(rand.NewPCG(seed, 2))
	m := mutate.Mutator{R: r}
	server := &testpb.Player{}
	for range 20 {
		m.Mutate(server) // start from a state that is not empty
	}
	tr := propsync.NewTracker("player/fixture", nil, server)
	snap, err := tr.Snapshot()
	if err != nil {
		return err
	}
	// The Go replica checks the fixture and reports the paths changed.
	replica := propsync.NewReplica(&testpb.Player{})
	var paths []string
	replica.OnChange("", func(p string) { paths = append(paths, p) })
	if err := replica.Apply(snap); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	write := func(l line) error {
		s, err := encode(propsync.Redact(server))
		if err != nil {
			return err
		}
		l.State = s
		return enc.Encode(l)
	}
	s, err := encode(snap)
	if err != nil {
		return err
	}
	if err := write(line{Snapshot: s}); err != nil {
		return err
	}
	for turn := range turns {
		if turn > 0 && turn%100 == 0 {
			snap, err := tr.Snapshot()
			if err != nil {
				return err
			}
			paths = nil
			if err := replica.Apply(snap); err != nil {
				return err
			}
			s, err := encode(snap)
			if err != nil {
				return err
			}
			if err := write(line{Snapshot: s, Paths: paths}); err != nil {
				return err
			}
		}
		for range 1 + r.IntN(4) {
			m.Mutate(server)
		}
		d, err := tr.Next(server)
		if err != nil {
			return err
		}
		if d == nil {
			continue
		}
		paths = nil
		if err := replica.Apply(d); err != nil {
			return fmt.Errorf("turn %d: the Go replica: %w", turn, err)
		}
		if !proto.Equal(replica.State(), propsync.Redact(server)) {
			return fmt.Errorf("turn %d: the Go replica differs from the state", turn)
		}
		s, err := encode(d)
		if err != nil {
			return err
		}
		if err := write(line{Delta: s, Paths: paths}); err != nil {
			return err
		}
	}
	return out.Flush()
}
