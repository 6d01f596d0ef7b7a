// Package mutate changes the state of propsync's tests (testpb.Player) at
// random, in every way Diff knows, for the property tests in Go
// (package propsync's) and the TypeScript SDK's cross-language test
// (propsync/internal/tsfixture): one mutator for both, so that they test
// the same changes.
package mutate

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/internal/testpb"
)

// Markers that the private fields hold once Mutate has set them: no
// encoded Delta or snapshot may contain them.
const (
	SecretMarker = "SECRET-MARKER-7f3a"
	NoteMarker   = "NOTE-MARKER-c91e"
	HiddenHP     = 987654321
)

// Mutator changes a Player at random, in every way Diff knows: scalars,
// an optional, an enum, bytes, nested messages set, changed and cleared,
// repeated scalars and messages grown, shrunk and changed, maps of
// scalars and messages with string, int64, uint32 and bool keys, a oneof
// switching cases, and private fields.
type Mutator struct {
	// R is the source of the changes: a seeded one replays them.
	R *rand.Rand
}

func (m Mutator) str() string {
	words := []string{"", "a", "sword", "shield", "potion", "x", "héros", "long-" + strings.Repeat("z", 40)}
	return words[m.R.IntN(len(words))]
}

func (m Mutator) stats() *testpb.Stats {
	s := &testpb.Stats{Hp: m.R.Int32N(100) - 10, Mp: m.R.Int32N(3), Speed: float32(m.R.IntN(4)) / 2}
	for range m.R.IntN(3) {
		s.Buffs = append(s.Buffs, m.R.Int32N(5))
	}
	return s
}

func (m Mutator) item() *testpb.Item {
	it := &testpb.Item{Id: m.str(), Count: m.R.Int32N(4)}
	if m.R.IntN(2) == 0 {
		it.Bonus = m.stats()
	}
	for range m.R.IntN(3) {
		if it.Attrs == nil {
			it.Attrs = map[string]int64{}
		}
		it.Attrs[m.str()] = m.R.Int64N(5) - 2
	}
	return it
}

func (m Mutator) mutateStats(s *testpb.Stats) {
	switch m.R.IntN(6) {
	case 0:
		s.Hp = m.R.Int32N(100)
	case 1:
		s.Mp = m.R.Int32N(3)
	case 2:
		s.Speed = float32(m.R.IntN(4)) / 2
	case 3:
		s.Buffs = append(s.Buffs, m.R.Int32N(5))
	case 4:
		if len(s.Buffs) > 0 {
			s.Buffs = s.Buffs[:m.R.IntN(len(s.Buffs))]
		}
	case 5:
		if len(s.Buffs) > 0 {
			s.Buffs[m.R.IntN(len(s.Buffs))] = m.R.Int32N(5)
		}
	}
}

func (m Mutator) mutateItem(it *testpb.Item) {
	switch m.R.IntN(5) {
	case 0:
		it.Id = m.str()
	case 1:
		it.Count = m.R.Int32N(4)
	case 2:
		if it.Bonus == nil || m.R.IntN(4) == 0 {
			it.Bonus = nil
			if m.R.IntN(2) == 0 {
				it.Bonus = m.stats()
			}
			return
		}
		m.mutateStats(it.Bonus)
	case 3:
		if it.Attrs == nil {
			it.Attrs = map[string]int64{}
		}
		it.Attrs[m.str()] = m.R.Int64N(3)
	case 4:
		for k := range it.Attrs {
			delete(it.Attrs, k)
			break
		}
	}
}

// Mutate makes one random change to p.
func (m Mutator) Mutate(p *testpb.Player) {
	r := m.R
	switch r.IntN(24) {
	case 0:
		p.Name = m.str()
	case 1:
		p.Gold = r.Int64N(5) - 2
	case 2:
		p.Class = testpb.Class(r.IntN(3))
	case 3:
		p.Avatar = []byte(m.str())
	case 4:
		if r.IntN(3) == 0 {
			p.Level = nil
		} else {
			p.Level = proto.Int32(r.Int32N(2)) // 0 too: explicit presence
		}
	case 5:
		p.Online = !p.Online
		p.X = float64(r.IntN(8))/4 - 0.5
		p.Exp = r.Uint64N(3) << (r.IntN(2) * 62) // 64-bit values too
	case 6:
		if p.Stats == nil || r.IntN(5) == 0 {
			p.Stats = nil
			if r.IntN(2) == 0 {
				p.Stats = m.stats()
			}
			return
		}
		m.mutateStats(p.Stats)
	case 7:
		p.Scores = append(p.Scores, r.Int32N(3))
	case 8:
		if len(p.Scores) > 0 {
			p.Scores = p.Scores[:r.IntN(len(p.Scores))]
		} else {
			p.Scores = []int32{r.Int32N(3), r.Int32N(3)}
		}
	case 9:
		if len(p.Scores) > 0 {
			p.Scores[r.IntN(len(p.Scores))] = r.Int32N(3)
		}
		if len(p.Tags) > 0 {
			p.Tags[r.IntN(len(p.Tags))] = m.str()
		}
	case 10:
		p.Tags = append(p.Tags, m.str())
		if r.IntN(3) == 0 {
			p.Tags = p.Tags[:r.IntN(len(p.Tags))]
		}
	case 11:
		p.Items = append(p.Items, m.item())
	case 12:
		if len(p.Items) > 0 {
			p.Items = p.Items[:r.IntN(len(p.Items))]
		}
	case 13, 14:
		if len(p.Items) > 0 {
			m.mutateItem(p.Items[r.IntN(len(p.Items))])
		}
	case 15:
		if p.Counters == nil {
			p.Counters = map[string]int32{}
		}
		p.Counters[m.str()] = r.Int32N(3)
		if r.IntN(3) == 0 {
			for k := range p.Counters {
				delete(p.Counters, k)
				break
			}
		}
	case 16:
		if p.Bag == nil {
			p.Bag = map[int64]*testpb.Item{}
		}
		p.Bag[r.Int64N(6)-3] = m.item()
	case 17:
		k := r.Int64N(6) - 3
		if it, ok := p.Bag[k]; ok {
			if r.IntN(3) == 0 {
				delete(p.Bag, k)
			} else {
				m.mutateItem(it)
			}
		}
	case 18:
		if p.Names == nil {
			p.Names = map[uint32]string{}
		}
		k := r.Uint32N(4) << (r.IntN(2) * 30)
		if r.IntN(3) == 0 {
			delete(p.Names, k)
		} else {
			p.Names[k] = m.str()
		}
		if p.Flags == nil {
			p.Flags = map[bool]int32{}
		}
		p.Flags[r.IntN(2) == 0] = r.Int32N(3)
	case 19:
		switch r.IntN(4) {
		case 0:
			p.Mount = nil
		case 1:
			p.Mount = &testpb.Player_Horse{Horse: m.str()}
		case 2:
			p.Mount = &testpb.Player_Dragon{Dragon: m.stats()}
		case 3:
			if d, ok := p.Mount.(*testpb.Player_Dragon); ok {
				m.mutateStats(d.Dragon)
			}
		}
	case 20:
		p.Secret = fmt.Sprintf("%s-%d", SecretMarker, r.IntN(100))
	case 21:
		p.Hidden = &testpb.Stats{Hp: HiddenHP, Buffs: []int32{HiddenHP}}
		if r.IntN(3) == 0 {
			p.Hidden = nil
		}
	case 22:
		p.Note = fmt.Sprintf("%s-%d", NoteMarker, r.IntN(100))
	case 23:
		if r.IntN(10) == 0 { // rarely: a reset of the whole state
			proto.Reset(p)
		}
	}
}
