package propsync_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/kindspb"
	"github.com/guildkit/guild/propsync/propsyncpb"
)

// TestGeneratedEveryKind checks guild gen's diff code on a state with
// every kind of field (kindspb.Kinds: all scalar kinds with and without
// presence, repeated and map fields of each, messages of another file,
// which go to reflection, lists, maps and a oneof of those and of enums
// of another Go package, a oneof with a private case and one of private
// cases only, a recursive field): 5,000 turns of random mutations, made by reflection, and after
// each the Tracker's ops (the generated code, which also keeps the copy
// last synced) must be those of Diff by reflection, and a replica they
// update must equal the state without its private fields. It runs with
// the .proto's marks only, and with Go-side marks too (a scalar, a
// field of a nested type, a map and a oneof's case), which the
// generated code skips at run time.
func TestGeneratedEveryKind(t *testing.T) {
	goMarks := []protoreflect.FullName{
		"guild.propsync.kinds.Kinds.text", "guild.propsync.kinds.Inner.b",
		"guild.propsync.kinds.Kinds.minner", "guild.propsync.kinds.Kinds.ps64",
	}
	for name, marks := range map[string][]protoreflect.FullName{"proto-marks": nil, "go-marks": goMarks} {
		t.Run(name, func(t *testing.T) {
			generatedEveryKind(t, propsync.NewDiffer(marks...), propsync.NewDiffer(marks...).ReflectOnly())
		})
	}
}

// generatedEveryKind is TestGeneratedEveryKind with gen, whose Tracker
// runs the generated code, and refl, which diffs by reflection, both with
// the same private marks.
func generatedEveryKind(t *testing.T, gen, refl *propsync.Differ) {
	r := rand.New(rand.NewPCG(seed(t), 3))
	state := &kindspb.Kinds{}
	if _, ok := any(state).(propsync.Generated); !ok {
		t.Fatal("kindspb.Kinds has no generated diff code: run make gen")
	}
	tr, replica := trackedReplica(t, "kinds/k", gen, state)
	prev := exactCopy(t, state)
	for turn := range 5000 {
		for range 1 + r.IntN(3) {
			mutateAny(r, state.ProtoReflect(), 0)
		}
		want, err := refl.Diff(prev, state)
		if err != nil {
			t.Fatal(err)
		}
		delta, err := tr.Next(state)
		if err != nil {
			t.Fatalf("turn %d: %v", turn, err)
		}
		if got := delta.GetOps(); !sameOpsGrouped(got, want) {
			t.Fatalf("turn %d: the generated code's ops\n%v\nreflection's\n%v", turn, got, want)
		}
		if delta != nil {
			b, err := proto.Marshal(delta)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "-MARK") {
				t.Fatalf("turn %d: a delta holds a private value: %q", turn, b)
			}
			if err := replica.Apply(delta); err != nil {
				t.Fatalf("turn %d: %v\nops: %v", turn, err, delta.GetOps())
			}
		}
		if w := gen.Redact(state); !proto.Equal(replica.State(), w) {
			t.Fatalf("turn %d: the replica differs from the state\nreplica: %v\nwant:    %v", turn, replica.State(), w)
		}
		prev = exactCopy(t, state)
	}
	t.Logf("version %d", tr.Version())
}

// sameOpsGrouped reports whether a and b hold the same ops, in the same
// order within each group of ops below one map entry: Diff finds the
// changes inside the values of a map of messages in no fixed order of
// keys.
func sameOpsGrouped(a, b []*propsyncpb.Op) bool {
	if len(a) != len(b) {
		return false
	}
	group := func(op *propsyncpb.Op) string {
		var s strings.Builder
		last := 0
		for i, st := range op.GetPath() {
			switch st.GetAt().(type) {
			case nil, *propsyncpb.Step_Index:
			default:
				last = i + 1
			}
		}
		for _, st := range op.GetPath()[:last] {
			fmt.Fprintf(&s, "%d:%v/", st.GetField(), st.GetAt())
		}
		return s.String()
	}
	a, b = slices.Clone(a), slices.Clone(b)
	for _, ops := range [][]*propsyncpb.Op{a, b} {
		slices.SortStableFunc(ops, func(x, y *propsyncpb.Op) int { return strings.Compare(group(x), group(y)) })
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// mutateAny changes one field of m at random, by reflection, in one of
// the ways a turn can: set a value, clear it, change a list or a map, or
// change a message below.
func mutateAny(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	fd := fields.Get(r.IntN(fields.Len()))
	switch {
	case fd.IsList():
		l := m.Mutable(fd).List()
		switch n := l.Len(); {
		case r.IntN(8) == 0:
			m.Clear(fd)
		case n > 0 && r.IntN(3) == 0:
			l.Truncate(r.IntN(n))
		case n > 0 && r.IntN(2) == 0:
			i := r.IntN(n)
			if fd.Message() != nil {
				mutateAny(r, l.Get(i).Message(), depth+1)
			} else {
				l.Set(i, randomValue(r, fd, l.NewElement()))
			}
		default:
			for range 1 + r.IntN(2) {
				l.Append(randomValue(r, fd, l.NewElement()))
			}
		}
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		k := randomValue(r, fd.MapKey(), protoreflect.Value{}).MapKey()
		switch {
		case r.IntN(8) == 0:
			m.Clear(fd)
		case mp.Has(k) && r.IntN(3) == 0:
			mp.Clear(k)
		case mp.Has(k) && fd.MapValue().Message() != nil && r.IntN(2) == 0:
			mutateAny(r, mp.Mutable(k).Message(), depth+1)
		default:
			mp.Set(k, randomValue(r, fd.MapValue(), mp.NewValue()))
		}
	case fd.Message() != nil:
		switch {
		case r.IntN(5) == 0:
			m.Clear(fd)
		case m.Has(fd) && depth < 3 && r.IntN(4) != 0:
			mutateAny(r, m.Mutable(fd).Message(), depth+1)
			if fd.Name() == "hidden" {
				hm := m.Get(fd).Message()
				hm.Set(hm.Descriptor().Fields().ByName("b"), protoreflect.ValueOfString("HIDDEN-MARK"))
			}
		default:
			m.Set(fd, randomValue(r, fd, m.NewField(fd)))
		}
	default:
		if r.IntN(5) == 0 {
			m.Clear(fd)
			return
		}
		m.Set(fd, randomValue(r, fd, protoreflect.Value{}))
	}
}

// randomValue returns a random value of fd's kind (a message: fresh is
// an empty one, which it fills a little).
func randomValue(r *rand.Rand, fd protoreflect.FieldDescriptor, fresh protoreflect.Value) protoreflect.Value {
	small := func() int64 { return r.Int64N(7) - 3 }
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(r.IntN(4))) // 3 is not a value: open enums keep it
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if r.IntN(10) == 0 {
			return protoreflect.ValueOfInt32(math.MinInt32)
		}
		return protoreflect.ValueOfInt32(int32(small()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if r.IntN(10) == 0 {
			return protoreflect.ValueOfInt64(math.MaxInt64)
		}
		return protoreflect.ValueOfInt64(small())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(r.IntN(4)))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(r.IntN(4)) << (r.IntN(2) * 63))
	case protoreflect.FloatKind:
		fs := []float32{0, float32(math.Copysign(0, -1)), 1.5, -2, float32(math.NaN())}
		return protoreflect.ValueOfFloat32(fs[r.IntN(len(fs))])
	case protoreflect.DoubleKind:
		fs := []float64{0, math.Copysign(0, -1), 1.5, -2, math.Inf(1), math.NaN()}
		return protoreflect.ValueOfFloat64(fs[r.IntN(len(fs))])
	case protoreflect.StringKind:
		words := []string{"", "a", "b", "héros"}
		if strings.HasPrefix(string(fd.Name()), "psecret") {
			return protoreflect.ValueOfString("PSECRET-MARK")
		}
		return protoreflect.ValueOfString(words[r.IntN(len(words))])
	case protoreflect.BytesKind:
		if strings.HasPrefix(string(fd.Name()), "psecret") {
			return protoreflect.ValueOfBytes([]byte("PSECRET-MARK"))
		}
		bs := [][]byte{nil, {}, {0}, {1, 2, 3}, []byte("xyz")}
		return protoreflect.ValueOfBytes(slices.Clone(bs[r.IntN(len(bs))]))
	}
	m := fresh.Message()
	for range r.IntN(3) {
		mutateAny(r, m, 3)
	}
	if fd.Name() == "hidden" { // private: its value must reach no client
		m.Set(m.Descriptor().Fields().ByName("b"), protoreflect.ValueOfString("HIDDEN-MARK"))
	}
	return fresh
}

// exactCopy copies m by its encoding: proto.Clone drops a float's -0.
func exactCopy(t *testing.T, m proto.Message) proto.Message {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c := m.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, c); err != nil {
		t.Fatal(err)
	}
	return c
}
