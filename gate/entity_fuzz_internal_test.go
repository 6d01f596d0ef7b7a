package gate

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// FuzzEntityKey feeds entityKey, which reads a SyncGrain request's body
// from the network, arbitrary bytes: it never panics, and a key it
// returns is not empty and is the entity's, after its kind.
func FuzzEntityKey(f *testing.F) {
	for _, e := range []string{"player/bob", "player/", "guild/bob", "", "player/a/b", "playerbob"} {
		b, _ := proto.Marshal(&propsyncpb.Subscribe{Entity: e})
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		key, err := entityKey("player", body)
		if err != nil {
			if key != "" {
				t.Fatalf("an error and a key %q", key)
			}
			return
		}
		var sub propsyncpb.Subscribe
		if err := proto.Unmarshal(body, &sub); err != nil {
			t.Fatalf("entityKey took a body that does not decode: %v", err)
		}
		if key == "" || sub.GetEntity() != "player/"+key {
			t.Fatalf("key %q of entity %q", key, sub.GetEntity())
		}
	})
}
