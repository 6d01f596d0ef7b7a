package gate

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// FuzzDeltaHead feeds deltaHead, which reads the pushes of a delta route
// as they pass the session, arbitrary bytes: it never panics, and for a
// body that proto.Unmarshal takes as a propsyncpb.Delta it reads the same
// entity, and an end notice exactly when the Delta is one (no version,
// base, ops nor snapshot).
func FuzzDeltaHead(f *testing.F) {
	for _, d := range []*propsyncpb.Delta{
		{Entity: "player/bob"},
		{Entity: "player/bob", Version: 2, Base: 1, Ops: []*propsyncpb.Op{{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{{Field: 1}}, Value: []byte{8, 1}}}},
		{Entity: "player/bob", Version: 1, IsSnapshot: true, Snapshot: []byte{8, 1}},
		{Entity: "player/bob", IsSnapshot: true},
		{Ops: []*propsyncpb.Op{{}}},
		{},
	} {
		b, _ := proto.Marshal(d)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0x0a, 0x05, 'a'})
	f.Fuzz(func(t *testing.T, body []byte) {
		entity, ended, ok := deltaHead(body)
		var d propsyncpb.Delta
		if err := proto.Unmarshal(body, &d); err != nil {
			return // not a Delta: deltaHead may say anything, but not panic
		}
		if !ok {
			t.Fatalf("deltaHead refused a Delta that decodes: %v", &d)
		}
		end := d.GetVersion() == 0 && d.GetBase() == 0 && len(d.GetOps()) == 0 && len(d.GetSnapshot()) == 0 && !d.GetIsSnapshot()
		if entity != d.GetEntity() || ended != end {
			t.Fatalf("deltaHead: %q, ended %v; proto.Unmarshal: %v (an end notice: %v)", entity, ended, &d, end)
		}
	})
}
