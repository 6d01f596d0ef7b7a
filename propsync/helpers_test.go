package propsync_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/internal/mutate"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

// Markers that private fields hold in the tests: no encoded Delta may
// contain them.
const (
	secretMarker = mutate.SecretMarker
	noteMarker   = mutate.NoteMarker
	hiddenHP     = mutate.HiddenHP
)

// notePrivate is the field made private on the Go side.
const notePrivate = "guild.propsync.test.Player.note"

// seed returns the seed of a randomized test: $PROPSYNC_SEED when set (to
// replay a failure), else a fresh one. It logs it.
func seed(t testing.TB) uint64 {
	t.Helper()
	s := rand.Uint64()
	if v := os.Getenv("PROPSYNC_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("PROPSYNC_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (replay with PROPSYNC_SEED=%d)", s, s)
	return s
}

// bigPlayer returns a player-like state of about 2 KB.
func bigPlayer() *testpb.Player {
	p := &testpb.Player{
		Name: "Aragorn", Gold: 123456, Class: testpb.Class_CLASS_WARRIOR, Level: proto.Int32(42),
		Online: true, X: 12.5, Exp: 987654,
		Avatar:   []byte(strings.Repeat("a", 64)),
		Stats:    &testpb.Stats{Hp: 900, Mp: 120, Speed: 1.5, Buffs: []int32{1, 2, 3}},
		Counters: map[string]int32{},
		Bag:      map[int64]*testpb.Item{},
		Names:    map[uint32]string{1: "friend", 2: "rival"},
		Mount:    &testpb.Player_Horse{Horse: "Brego"},
		Secret:   secretMarker,
	}
	for i := range 30 {
		p.Scores = append(p.Scores, int32(i*37))
		p.Tags = append(p.Tags, fmt.Sprintf("tag-%d", i))
		p.Counters[fmt.Sprintf("quest-%02d", i)] = int32(i)
	}
	for i := range 24 {
		p.Items = append(p.Items, &testpb.Item{Id: fmt.Sprintf("item-%02d", i), Count: int32(i), Bonus: &testpb.Stats{Hp: int32(i), Speed: 0.5}})
	}
	for i := range 16 {
		p.Bag[int64(i)] = &testpb.Item{Id: fmt.Sprintf("bag-%02d", i), Count: 1, Attrs: map[string]int64{"dur": 100}}
	}
	return p
}
