package propsync_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/mutate"
	"github.com/guildkit/guild/propsync/internal/testpb"
	"github.com/guildkit/guild/propsync/propsyncpb"
)

// roundTrip encodes d and decodes it, as the wire does, and checks that
// no private value is in its bytes.
func roundTrip(t *testing.T, d *propsyncpb.Delta) *propsyncpb.Delta {
	t.Helper()
	b, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	noPrivate(t, b)
	var out propsyncpb.Delta
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// noPrivate fails when b holds a private field's marker.
func noPrivate(t *testing.T, b []byte) {
	t.Helper()
	hp := binary.AppendUvarint(nil, hiddenHP)
	switch {
	case bytes.Contains(b, []byte(secretMarker)):
		t.Fatalf("an encoded delta holds the private field secret: %q", b)
	case bytes.Contains(b, []byte(noteMarker)):
		t.Fatalf("an encoded delta holds the field note, private by a Go option: %q", b)
	case bytes.Contains(b, hp):
		t.Fatalf("an encoded delta holds a value of the private message hidden: %x", b)
	}
}

// TestPropertySyncRandomMutations makes 10,000 random mutations to a
// nested state, one at a time and then in turns of several, and after
// each turn sends the delta through the wire to a replica, which must
// then equal the state without its private fields. Now and then a fresh
// replica subscribes (a snapshot) and must be equal too.
func TestPropertySyncRandomMutations(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 1))
	m := mutate.Mutator{R: r}
	d := propsync.NewDiffer(notePrivate)
	server := &testpb.Player{}
	tr := propsync.NewTracker("player/p1", d, server)
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	replica := propsync.NewReplica(&testpb.Player{})
	if err := replica.Apply(roundTrip(t, snap)); err != nil {
		t.Fatal(err)
	}
	// walked follows the ops of a Diff that walks every field by
	// reflection, without the encodings' shortcut.
	walked, prev := d.Redact(server), proto.Clone(server)
	const mutations = 10000
	deltas := 0
	for done, turn := 0, 0; done < mutations; turn++ {
		n := 1
		if done >= mutations/2 {
			n = 1 + r.IntN(5) // turns of several mutations
		}
		for range n {
			m.Mutate(server)
			done++
		}
		delta, err := tr.Next(server)
		if err != nil {
			t.Fatal(err)
		}
		if delta != nil {
			deltas++
			if err := replica.Apply(roundTrip(t, delta)); err != nil {
				t.Fatalf("turn %d: %v\nops: %v", turn, err, delta.GetOps())
			}
		}
		want := d.Redact(server)
		ops, err := d.DiffByWalk(prev, server)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := propsync.Apply(walked, ops); err != nil {
			t.Fatalf("turn %d, the walk's ops: %v", turn, err)
		}
		if !proto.Equal(walked, want) {
			t.Fatalf("turn %d: the walk's ops made\n%v\nwant\n%v", turn, walked, want)
		}
		prev = proto.Clone(server)
		if !proto.Equal(replica.State(), want) {
			t.Fatalf("turn %d (%d mutations): the replica differs from the state\nreplica: %v\nwant:    %v\ndelta:   %v", turn, done, replica.State(), want, delta)
		}
		if replica.Version() != tr.Version() {
			t.Fatalf("turn %d: replica at version %d, the tracker at %d", turn, replica.Version(), tr.Version())
		}
		if turn%500 == 0 {
			snap, err := tr.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			fresh := propsync.NewReplica(&testpb.Player{})
			if err := fresh.Apply(roundTrip(t, snap)); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(fresh.State(), want) {
				t.Fatalf("turn %d: a snapshot differs from the state\n%v\n%v", turn, fresh.State(), want)
			}
		}
	}
	t.Logf("%d mutations, %d deltas, version %d", mutations, deltas, tr.Version())
}

// TestPropertySyncPrivateFields checks that private fields, marked in the
// .proto or by a Go option, reach no delta and no snapshot, and that
// changing only them makes no delta.
func TestPropertySyncPrivateFields(t *testing.T) {
	d := propsync.NewDiffer(notePrivate)
	p := bigPlayer()
	p.Note = noteMarker
	p.Hidden = &testpb.Stats{Hp: hiddenHP}
	tr := propsync.NewTracker("player/p1", d, p)
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, snap)
	p.Secret, p.Note, p.Hidden.Mp = secretMarker+"2", noteMarker+"2", 5
	if delta, err := tr.Next(p); err != nil || delta != nil {
		t.Fatalf("a change of private fields only: delta %v, %v; want none", delta, err)
	}
	ops, err := propsync.Diff(&testpb.Player{}, p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(&propsyncpb.Delta{Ops: ops})
	if !bytes.Contains(b, []byte(noteMarker)) {
		t.Fatal("without the Go option, note should have been synced")
	}
	if bytes.Contains(b, []byte(secretMarker)) {
		t.Fatal("Diff without options synced secret, marked private in the .proto")
	}
	// Below a private field nothing is synced, even inside a new message.
	p2 := &testpb.Player{Mount: &testpb.Player_Dragon{Dragon: &testpb.Stats{Hp: 1}}, Items: []*testpb.Item{{Id: "x"}}}
	ops, err = d.Diff(&testpb.Player{}, p2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 {
		t.Fatalf("ops %v, want a SET of dragon and an append to items", ops)
	}
}

// TestPropertySyncOps checks the ops Diff finds for each kind of change,
// and the paths Apply reports.
func TestPropertySyncOps(t *testing.T) {
	base := func() *testpb.Player { return bigPlayer() }
	cases := []struct {
		name  string
		edit  func(p *testpb.Player)
		kinds []propsyncpb.Op_Kind
		paths []string
	}{
		{"scalar", func(p *testpb.Player) { p.Gold++ }, kinds(propsyncpb.Op_SET), []string{"gold"}},
		{"to default", func(p *testpb.Player) { p.Gold = 0 }, kinds(propsyncpb.Op_CLEAR), []string{"gold"}},
		{"optional to zero", func(p *testpb.Player) { p.Level = proto.Int32(0) }, kinds(propsyncpb.Op_SET), []string{"level"}},
		{"optional unset", func(p *testpb.Player) { p.Level = nil }, kinds(propsyncpb.Op_CLEAR), []string{"level"}},
		{"nested", func(p *testpb.Player) { p.Stats.Hp = 1 }, kinds(propsyncpb.Op_SET), []string{"stats.hp"}},
		{"message unset", func(p *testpb.Player) { p.Stats = nil }, kinds(propsyncpb.Op_CLEAR), []string{"stats"}},
		{"list element", func(p *testpb.Player) { p.Scores[3] = 7 }, kinds(propsyncpb.Op_SET), []string{"scores"}},
		{"list shorter", func(p *testpb.Player) { p.Scores = p.Scores[:2] }, kinds(propsyncpb.Op_LIST_TRUNCATE), []string{"scores"}},
		{"list longer", func(p *testpb.Player) { p.Tags = append(p.Tags, "a", "b") }, kinds(propsyncpb.Op_LIST_APPEND), []string{"tags"}},
		{"list emptied", func(p *testpb.Player) { p.Tags = nil }, kinds(propsyncpb.Op_CLEAR), []string{"tags"}},
		{"message element", func(p *testpb.Player) { p.Items[3].Count = 99 }, kinds(propsyncpb.Op_SET), []string{"items.count"}},
		{"map new key", func(p *testpb.Player) { p.Counters["new"] = 1 }, kinds(propsyncpb.Op_SET), []string{"counters"}},
		{"map delete", func(p *testpb.Player) { delete(p.Counters, "quest-03") }, kinds(propsyncpb.Op_MAP_DELETE), []string{"counters"}},
		{"map of messages", func(p *testpb.Player) { p.Bag[2].Attrs["dur"] = 50 }, kinds(propsyncpb.Op_SET), []string{"bag.attrs"}},
		{"oneof case", func(p *testpb.Player) { p.Mount = &testpb.Player_Dragon{Dragon: &testpb.Stats{Hp: 5}} }, kinds(propsyncpb.Op_SET), []string{"dragon"}},
		{"oneof cleared", func(p *testpb.Player) { p.Mount = nil }, kinds(propsyncpb.Op_CLEAR), []string{"horse"}},
		{"three fields", func(p *testpb.Player) { p.Gold, p.Stats.Hp, p.Items[5].Count = 1, 2, 3 },
			kinds(propsyncpb.Op_SET, propsyncpb.Op_SET, propsyncpb.Op_SET), []string{"gold", "stats.hp", "items.count"}},
		{"private only", func(p *testpb.Player) { p.Secret = "other" }, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, next := base(), base()
			c.edit(next)
			ops, err := propsync.Diff(old, next)
			if err != nil {
				t.Fatal(err)
			}
			var got []propsyncpb.Op_Kind
			for _, op := range ops {
				got = append(got, op.GetKind())
			}
			if !slices.Equal(got, c.kinds) {
				t.Fatalf("ops %v, want kinds %v", ops, c.kinds)
			}
			replica := propsync.Redact(old)
			paths, err := propsync.Apply(replica, ops)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(paths, c.paths) {
				t.Errorf("paths %q, want %q", paths, c.paths)
			}
			if !proto.Equal(replica, propsync.Redact(next)) {
				t.Errorf("the replica differs:\n%v\n%v", replica, propsync.Redact(next))
			}
		})
	}
}

func kinds(k ...propsyncpb.Op_Kind) []propsyncpb.Op_Kind { return k }

// TestPropertySyncReplica checks versions: deltas before the snapshot are
// held, those the snapshot holds are skipped, a missed one is a gap, and
// the end of a subscription is a gap too. OnChange fires by prefix.
func TestPropertySyncReplica(t *testing.T) {
	p := bigPlayer()
	tr := propsync.NewTracker("player/p1", nil, p)
	var deltas []*propsyncpb.Delta
	for i := range 4 {
		p.Stats.Hp = int32(i + 1)
		p.Gold++
		d, err := tr.Next(p)
		if err != nil || d == nil {
			t.Fatalf("delta %v, %v", d, err)
		}
		deltas = append(deltas, d)
	}
	if d, _ := tr.Next(p); d != nil {
		t.Fatalf("no change, yet a delta %v", d)
	}
	snap, _ := tr.Snapshot() // version 5: holds all four
	r := propsync.NewReplica(&testpb.Player{})
	var fired []string
	r.OnChange("stats", func(path string) { fired = append(fired, path) })
	// A push that overtook the reply to the subscribe: held.
	if err := r.Apply(deltas[3]); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if r.Version() != 5 || !r.Synced() || !proto.Equal(r.State(), propsync.Redact(p)) {
		t.Fatalf("after the snapshot: version %d, synced %v", r.Version(), r.Synced())
	}
	if !slices.Equal(fired, []string{"stats"}) {
		t.Fatalf("a snapshot fired %q, want [stats]", fired)
	}
	if err := r.Apply(deltas[2]); err != nil { // older than the snapshot: skipped
		t.Fatal(err)
	}
	p.Stats.Hp, p.Name = 77, "new"
	d6, _ := tr.Next(p)
	p.Name = "newer"
	d7, _ := tr.Next(p)
	fired = nil
	if err := r.Apply(d6); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fired, []string{"stats.hp"}) {
		t.Fatalf("fired %q, want [stats.hp]", fired)
	}
	p.Name = "newest"
	d8, _ := tr.Next(p)
	if err := r.Apply(d8); !errors.Is(err, propsync.ErrGap) {
		t.Fatalf("a missed delta: %v, want ErrGap", err)
	}
	_ = d7
	snap, _ = tr.Snapshot()
	if err := r.Apply(snap); err != nil || !proto.Equal(r.State(), propsync.Redact(p)) {
		t.Fatalf("resync: %v", err)
	}
	if err := r.Apply(tr.Ended()); !errors.Is(err, propsync.ErrGap) {
		t.Fatalf("the end of a subscription: %v, want ErrGap", err)
	}

	// A subscription that ended while the client was away (it never saw
	// the end notice): the next activation counts from 1 again. Desync
	// before subscribing again holds the new subscription's delta that
	// overtakes its snapshot, instead of skipping it as old.
	if err := r.Apply(snap); err != nil || !r.Synced() || r.Version() <= 3 {
		t.Fatalf("synced again: %v, version %d", err, r.Version())
	}
	q := proto.Clone(p).(*testpb.Player)
	next := propsync.NewTracker("player/p1", nil, q)
	q.Stats.Hp = 5
	if _, err := next.Next(q); err != nil { // version 2
		t.Fatal(err)
	}
	snap2, _ := next.Snapshot()
	q.Stats.Hp = 6
	early, _ := next.Next(q) // version 3, pushed after the snapshot, arrives first
	r.Desync()
	if err := r.Apply(early); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap2); err != nil {
		t.Fatal(err)
	}
	if r.Version() != 3 || !r.Synced() || !proto.Equal(r.State(), propsync.Redact(q)) {
		t.Fatalf("after Desync, an early delta and the snapshot: version %d, synced %v, hp %d; want version 3, hp 6",
			r.Version(), r.Synced(), r.State().(*testpb.Player).GetStats().GetHp())
	}
}

// TestPropertySyncSegments checks the split of an encoding by field:
// records of one field that are not contiguous are marked, so that their
// bytes are not trusted.
func TestPropertySyncSegments(t *testing.T) {
	// field 1 varint 1, field 2 varint 2, field 1 varint 3, field 3 bytes "ab"
	b := []byte{0x08, 1, 0x10, 2, 0x08, 3, 0x1a, 2, 'a', 'b'}
	nums, split, ok := propsync.Segments(b)
	if !ok || !slices.Equal(nums, []int32{1, 2, 1, 3}) || !slices.Equal(split, []bool{true, false, false, false}) {
		t.Fatalf("segments %v, split %v, ok %v", nums, split, ok)
	}
	if _, _, ok := propsync.Segments([]byte{0x0a, 5, 1}); ok {
		t.Fatal("a truncated record parsed")
	}
}

// TestPropertySyncBadOps checks that ops that do not fit return ErrBadOp.
func TestPropertySyncBadOps(t *testing.T) {
	step := func(f uint32) *propsyncpb.Step { return &propsyncpb.Step{Field: f} }
	idx := func(f, i uint32) *propsyncpb.Step {
		return &propsyncpb.Step{Field: f, At: &propsyncpb.Step_Index{Index: i}}
	}
	bad := []*propsyncpb.Op{
		{Kind: propsyncpb.Op_SET},
		{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{step(2)}, Value: []byte{0xff}},
		{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{idx(11, 100)}, Value: []byte{0x58, 1}},
		{Kind: propsyncpb.Op_LIST_TRUNCATE, Path: []*propsyncpb.Step{step(11)}, Length: 1000},
		{Kind: propsyncpb.Op_LIST_TRUNCATE, Path: []*propsyncpb.Step{step(2)}},
		{Kind: propsyncpb.Op_MAP_DELETE, Path: []*propsyncpb.Step{{Field: 14, At: &propsyncpb.Step_KeyInt{KeyInt: 1}}}},
		{Kind: propsyncpb.Op_MAP_DELETE, Path: []*propsyncpb.Step{{Field: 14, At: &propsyncpb.Step_KeyString{KeyString: "absent"}}}},
		{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{step(2), step(1)}},
		{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{idx(13, 50), step(1)}},
		{Kind: 42, Path: []*propsyncpb.Step{step(2)}},
	}
	for i, op := range bad {
		if _, err := propsync.Apply(bigPlayer(), []*propsyncpb.Op{op}); !errors.Is(err, propsync.ErrBadOp) {
			t.Errorf("op %d %v: %v, want ErrBadOp", i, op, err)
		}
	}
	if _, err := propsync.Diff(&testpb.Player{}, &testpb.Stats{}); !errors.Is(err, propsync.ErrMismatch) {
		t.Errorf("Diff of two types: %v", err)
	}
}

// FuzzApply applies arbitrary encoded ops to a state: never a panic,
// and an error for what does not fit.
func FuzzApply(f *testing.F) {
	old, next := bigPlayer(), bigPlayer()
	next.Gold, next.Stats.Hp, next.Items[2].Count = 1, 2, 3
	next.Bag[99] = &testpb.Item{Id: "n"}
	delete(next.Counters, "quest-01")
	next.Scores = next.Scores[:3]
	next.Tags = append(next.Tags, "t")
	ops, _ := propsync.Diff(old, next)
	for _, op := range ops {
		b, _ := proto.Marshal(op)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var op propsyncpb.Op
		if proto.Unmarshal(b, &op) != nil {
			return
		}
		_, _ = propsync.Apply(bigPlayer(), []*propsyncpb.Op{&op})
		r := propsync.NewReplica(&testpb.Player{})
		_ = r.Apply(&propsyncpb.Delta{IsSnapshot: true, Snapshot: b})
		_ = r.Apply(&propsyncpb.Delta{Version: 2, Base: 1, Ops: []*propsyncpb.Op{&op}})
	})
}

// TestPropertySyncCallbackAbovePrefix: a message set whole (from unset)
// fires the callbacks registered below it, with their own prefix.
func TestPropertySyncCallbackAbovePrefix(t *testing.T) {
	p := &testpb.Player{Name: "a"}
	tr := propsync.NewTracker("player/p1", nil, p)
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := propsync.NewReplica(&testpb.Player{})
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	var hp, name []string
	r.OnChange("stats.hp", func(path string) { hp = append(hp, path) })
	r.OnChange("name", func(path string) { name = append(name, path) })
	p.Stats = &testpb.Stats{Hp: 3}
	d, err := tr.Next(p)
	if err != nil || d == nil {
		t.Fatalf("Next: %v, %v", d, err)
	}
	if err := r.Apply(d); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hp, []string{"stats.hp"}) || len(name) != 0 {
		t.Fatalf("stats set whole fired %q on stats.hp and %q on name; want [stats.hp] and none", hp, name)
	}
}

// TestPropertySyncNewerField: an op on a field number the replica's type
// does not have (a server built from a newer .proto, during a rolling
// upgrade) is skipped, and the ops around it apply.
func TestPropertySyncNewerField(t *testing.T) {
	step := func(f uint32) *propsyncpb.Step { return &propsyncpb.Step{Field: f} }
	p := &testpb.Player{Name: "a", Stats: &testpb.Stats{Hp: 1}}
	ops := []*propsyncpb.Op{
		{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{step(999)}, Value: []byte{0xb8, 0x3e, 0x01}},
		{Kind: propsyncpb.Op_CLEAR, Path: []*propsyncpb.Step{step(10), step(999)}},
	}
	q := &testpb.Player{Name: "b"}
	more, err := propsync.Diff(p, q)
	if err != nil {
		t.Fatal(err)
	}
	ops = append(ops, more...)
	changed, err := propsync.Apply(p, ops)
	if err != nil {
		t.Fatalf("ops on fields of a newer build: %v, want them skipped", err)
	}
	if !proto.Equal(p, q) || slices.Contains(changed, "") {
		t.Fatalf("after the skipped ops: %v (changed %q), want %v", p, changed, q)
	}
}

// TestPropertySyncGeneratedMatchesReflection makes 10,000 random
// mutations, as TestPropertySyncRandomMutations, to a state whose type
// has generated diff code (guild gen), and checks after every turn that
// the Tracker's ops, found by that code, are those Diff finds by
// reflection (the changes inside a map of messages may come in another
// order of keys), and that a replica they update equals the state.
func TestPropertySyncGeneratedMatchesReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 2))
	m := mutate.Mutator{R: r}
	d := propsync.NewDiffer() // no Go-side marks: the generated code runs
	server := &testpb.Player{}
	if _, ok := any(server).(propsync.Generated); !ok {
		t.Fatal("testpb.Player has no generated diff code: run make gen")
	}
	tr, replica := trackedReplica(t, "player/p1", d, server)
	prev := proto.Clone(server)
	const mutations = 10000
	for done, turn := 0, 0; done < mutations; turn++ {
		for range 1 + r.IntN(3) {
			m.Mutate(server)
			done++
		}
		want, err := d.DiffByWalk(prev, server)
		if err != nil {
			t.Fatal(err)
		}
		viaDiff, err := d.Diff(prev, server) // the generated code, without keep
		if err != nil {
			t.Fatal(err)
		}
		delta, err := tr.Next(server)
		if err != nil {
			t.Fatal(err)
		}
		got := delta.GetOps()
		if !sameOps(got, want) || !sameOps(viaDiff, want) {
			t.Fatalf("turn %d: the generated code's ops\n%v\nDiff's (generated, no keep)\n%v\nreflection's\n%v", turn, got, viaDiff, want)
		}
		if delta != nil {
			if err := replica.Apply(roundTripPublic(t, delta)); err != nil {
				t.Fatalf("turn %d: %v", turn, err)
			}
		}
		if w := d.Redact(server); !proto.Equal(replica.State(), w) {
			t.Fatalf("turn %d: the replica differs from the state\nreplica: %v\nwant:    %v", turn, replica.State(), w)
		}
		prev = proto.Clone(server)
	}
}

// roundTripPublic encodes d and decodes it, checking only the private
// fields of the .proto (note is not private without the Go option).
func roundTripPublic(t *testing.T, d *propsyncpb.Delta) *propsyncpb.Delta {
	t.Helper()
	b, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secretMarker)) || bytes.Contains(b, binary.AppendUvarint(nil, hiddenHP)) {
		t.Fatalf("an encoded delta holds a private field: %q", b)
	}
	var out propsyncpb.Delta
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// sameOps reports whether a and b are the same ops, but for the order of
// the keys of the map of messages bag, whose changes Diff finds in no
// fixed order.
func sameOps(a, b []*propsyncpb.Op) bool {
	if len(a) != len(b) {
		return false
	}
	bagKey := func(op *propsyncpb.Op) int64 {
		if s := op.GetPath()[0]; s.GetField() == 15 {
			return s.GetKeyInt()
		}
		return 0
	}
	a, b = slices.Clone(a), slices.Clone(b)
	for _, ops := range [][]*propsyncpb.Op{a, b} {
		slices.SortStableFunc(ops, func(x, y *propsyncpb.Op) int {
			if f := int(x.GetPath()[0].GetField()) - int(y.GetPath()[0].GetField()); f != 0 {
				return f
			}
			return cmp.Compare(bagKey(x), bagKey(y))
		})
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// trackedReplica starts tracking state, and a replica of it from the
// tracker's first snapshot.
func trackedReplica(t *testing.T, entity string, d *propsync.Differ, state proto.Message) (*propsync.Tracker, *propsync.Replica) {
	t.Helper()
	tr := propsync.NewTracker(entity, d, state)
	replica := propsync.NewReplica(state.ProtoReflect().New().Interface())
	snap, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Apply(snap); err != nil {
		t.Fatal(err)
	}
	return tr, replica
}
