package propsync_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/kindspb"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

// TestGeneratedEdgeStates diffs states that the random mutators never
// make, by the generated code and by reflection, and wants the same ops,
// or an error from both, and no panic: nil pointers where messages go (a
// whole state, a list element, a map value, a oneof's message, a oneof
// wrapper that is itself a nil pointer; of a type of the file's package
// and of another Go package's) and strings that are not UTF-8 (a value,
// a map key, which protobuf refuses to encode, and a map key in the path
// of an op). A Tracker then takes each pair in turn.
func TestGeneratedEdgeStates(t *testing.T) {
	cases := []struct {
		name     string
		old, new proto.Message
		wantErr  bool
	}{
		{"nil old state", (*testpb.Player)(nil), &testpb.Player{Name: "a"}, false},
		{"nil new state", &testpb.Player{Name: "a"}, (*testpb.Player)(nil), false},
		{"nil list element", &testpb.Player{Items: []*testpb.Item{{Count: 1}}}, &testpb.Player{Items: []*testpb.Item{nil}}, false},
		{"nil list element, old", &testpb.Player{Items: []*testpb.Item{nil}}, &testpb.Player{Items: []*testpb.Item{{Count: 1}}}, false},
		{"nil map value", &testpb.Player{Bag: map[int64]*testpb.Item{1: {Count: 2}}}, &testpb.Player{Bag: map[int64]*testpb.Item{1: nil}}, false},
		{"nil map value, old", &testpb.Player{Bag: map[int64]*testpb.Item{1: nil}}, &testpb.Player{Bag: map[int64]*testpb.Item{1: {Count: 2}}}, false},
		{"nil oneof message", &kindspb.Kinds{Pick: &kindspb.Kinds_Pinner{Pinner: &kindspb.Inner{A: 1}}}, &kindspb.Kinds{Pick: &kindspb.Kinds_Pinner{}}, false},
		{"nil oneof wrapper (bytes)", &kindspb.Kinds{Pick: &kindspb.Kinds_Pbytes{Pbytes: []byte("x")}}, &kindspb.Kinds{Pick: (*kindspb.Kinds_Pbytes)(nil)}, false},
		{"nil oneof wrapper (message)", &kindspb.Kinds{}, &kindspb.Kinds{Pick: (*kindspb.Kinds_Pinner)(nil)}, false},
		{"nil oneof wrapper, old", &kindspb.Kinds{Pick: (*kindspb.Kinds_Ps64)(nil)}, &kindspb.Kinds{Pick: &kindspb.Kinds_Ps64{Ps64: 3}}, false},
		// The same, of a message type of another Go package, which the
		// generated code makes through propsync.Empty.
		{"nil list element of another package", &kindspb.Kinds{Ats: []*timestamppb.Timestamp{{Seconds: 1}}}, &kindspb.Kinds{Ats: []*timestamppb.Timestamp{nil, {Nanos: 2}}}, false},
		{"nil list element of another package, old", &kindspb.Kinds{Ats: []*timestamppb.Timestamp{nil}}, &kindspb.Kinds{Ats: []*timestamppb.Timestamp{{Seconds: 1}}}, false},
		{"nil map value of another package", &kindspb.Kinds{Mats: map[string]*timestamppb.Timestamp{"a": {Seconds: 1}}}, &kindspb.Kinds{Mats: map[string]*timestamppb.Timestamp{"a": nil}}, false},
		{"nil map value of another package, old", &kindspb.Kinds{Mats: map[string]*timestamppb.Timestamp{"a": nil}}, &kindspb.Kinds{Mats: map[string]*timestamppb.Timestamp{"a": {Seconds: 1}}}, false},
		{"nil oneof message of another package", &kindspb.Kinds{Pick: &kindspb.Kinds_Pat{Pat: &timestamppb.Timestamp{Seconds: 1}}}, &kindspb.Kinds{Pick: &kindspb.Kinds_Pat{}}, false},
		{"nil oneof message of another package, old", &kindspb.Kinds{Pick: &kindspb.Kinds_Pat{}}, &kindspb.Kinds{Pick: &kindspb.Kinds_Pat{Pat: &timestamppb.Timestamp{Seconds: 1}}}, false},
		{"invalid UTF-8 value", &testpb.Player{}, &testpb.Player{Name: "\xff"}, true},
		{"invalid UTF-8 map key", &testpb.Player{}, &testpb.Player{Counters: map[string]int32{"\xfe": 1}}, true},
		// An op below, or the deletion of, an entry whose key is not
		// UTF-8: its path would not encode.
		{"invalid UTF-8 map key above a change", &kindspb.Kinds{Mats: map[string]*timestamppb.Timestamp{"\xff": {Seconds: 1}}},
			&kindspb.Kinds{Mats: map[string]*timestamppb.Timestamp{"\xff": {Seconds: 2}}}, true},
		{"invalid UTF-8 map key deleted", &testpb.Player{Counters: map[string]int32{"\xfe": 1, "a": 1}}, &testpb.Player{Counters: map[string]int32{"a": 1}}, true},
		{"invalid UTF-8 list element", &testpb.Player{}, &testpb.Player{Tags: []string{"ok", "\xfe"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refl, rerr := propsync.NewDiffer().ReflectOnly().Diff(c.old, c.new)
			gen, gerr := propsync.NewDiffer().Diff(c.old, c.new)
			if (rerr != nil) != c.wantErr || (gerr != nil) != c.wantErr {
				t.Fatalf("errors: reflection %v, generated %v; want an error: %v", rerr, gerr, c.wantErr)
			}
			if !c.wantErr && !sameOps(gen, refl) {
				t.Fatalf("the generated code's ops\n%v\nreflection's\n%v", gen, refl)
			}
			if c.wantErr || !c.old.ProtoReflect().IsValid() {
				return
			}
			// A Tracker on old, then new: its delta must make a replica of
			// old equal new.
			tr, replica := trackedReplica(t, "e/1", propsync.NewDiffer(), proto.Clone(c.old))
			delta, err := tr.Next(c.new)
			if err != nil {
				t.Fatal(err)
			}
			if delta != nil {
				if err := replica.Apply(delta); err != nil {
					t.Fatal(err)
				}
			}
			if want := propsync.Redact(c.new); !proto.Equal(replica.State(), want) {
				t.Fatalf("the replica\n%v\nwant\n%v", replica.State(), want)
			}
		})
	}
}
