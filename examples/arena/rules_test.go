package arena

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store/embedded"
)

// testWorld returns a world actor with the default settings and no
// grains, with players and orbs placed by hand.
func testWorld(players []*player, orbs []*orb) *worldActor {
	w := newWorldActor(WorldSettings{}.withDefaults(), nil)
	for _, p := range players {
		w.players[p.id] = p
		w.grid.move(p.id, p.x, p.y)
	}
	for _, o := range orbs {
		w.addOrb(o)
	}
	return w
}

func TestPickupsGoToTheClosestPlayer(t *testing.T) {
	w := testWorld(
		[]*player{
			{id: "a", x: 500, y: 500},
			{id: "b", x: 520, y: 500},
			{id: "c", x: 1000, y: 1000},
			{id: "d", x: 1000, y: 1040},
		},
		[]*orb{
			{id: 1, x: 515, y: 500, value: 1},                // b is closer (5) than a (15)
			{id: 2, x: 1000, y: 1020, value: goldValue},      // c and d at 20: c, the smaller ID
			{id: 3, x: 1000 + PickupRadius + 1, y: 1000},     // out of c's reach
			{id: 4, x: 1500, y: 1500, value: 1},              // nobody near
			{id: 5, x: 500 - PickupRadius, y: 500, value: 1}, // on the edge of a's reach
		},
	)
	got := w.pickups()
	want := []pickup{{"b", 1}, {"c", goldValue}, {"a", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("pickups %v, want %v", got, want)
	}
	for id, score := range map[string]uint32{"a": 1, "b": 1, "c": goldValue, "d": 0} {
		if w.players[id].score != score {
			t.Errorf("%s's score %d, want %d", id, w.players[id].score, score)
		}
	}
	var left []uint32
	for id := range w.orbs {
		left = append(left, id)
	}
	slices.Sort(left)
	if !slices.Equal(left, []uint32{3, 4}) {
		t.Errorf("orbs left %v, want [3 4]", left)
	}
	if _, ok := w.orbGrid.where[1]; ok {
		t.Error("a picked-up orb is still in the grid")
	}
	if got := w.pickups(); len(got) != 0 {
		t.Errorf("pickups again: %v, want none", got)
	}
}

func TestFillOrbs(t *testing.T) {
	w := testWorld([]*player{{id: "a", x: 5, y: 5}}, nil)
	now := time.Now()
	w.fillOrbs(now)
	if len(w.orbs) != DefaultOrbs || len(w.orbGrid.where) != DefaultOrbs {
		t.Fatalf("%d orbs (%d in the grid), want %d", len(w.orbs), len(w.orbGrid.where), DefaultOrbs)
	}
	gold := 0
	for _, o := range w.orbs {
		if o.x < orbMargin || o.x > w.s.Width-orbMargin || o.y < orbMargin || o.y > w.s.Height-orbMargin {
			t.Errorf("orb %d at %.0f,%.0f: too close to a wall", o.id, o.x, o.y)
		}
		if o.value != 1 && o.value != goldValue {
			t.Errorf("orb %d is worth %d", o.id, o.value)
		}
		if o.value == goldValue {
			gold++
		}
		if life := o.expires.Sub(now); life < DefaultOrbLife/2 || life > DefaultOrbLife*3/2 {
			t.Errorf("orb %d lasts %v", o.id, life)
		}
	}
	t.Logf("%d gold orbs of %d", gold, len(w.orbs))
	// One picked up: one new one.
	w.players["a"].x, w.players["a"].y = w.orbs[1].x, w.orbs[1].y
	w.grid.move("a", w.players["a"].x, w.players["a"].y)
	if len(w.pickups()) == 0 {
		t.Fatal("no pickup")
	}
	w.fillOrbs(now)
	if len(w.orbs) != DefaultOrbs {
		t.Errorf("%d orbs after a refill, want %d", len(w.orbs), DefaultOrbs)
	}
	// Orbs nobody picks up make way for new ones in time.
	w.expireOrbs(now.Add(DefaultOrbLife/2 - time.Millisecond))
	if len(w.orbs) != DefaultOrbs {
		t.Errorf("%d orbs before any expired, want %d", len(w.orbs), DefaultOrbs)
	}
	first := w.nextOrb
	w.expireOrbs(now.Add(DefaultOrbLife * 3 / 2))
	if len(w.orbs) != 0 || len(w.orbGrid.where) != 0 {
		t.Errorf("%d orbs (%d in the grid) once all expired, want 0", len(w.orbs), len(w.orbGrid.where))
	}
	w.fillOrbs(now.Add(DefaultOrbLife * 3 / 2))
	for id := range w.orbs {
		if id <= first {
			t.Errorf("orb %d is back after it expired", id)
		}
	}
	if len(w.orbs) != DefaultOrbs {
		t.Errorf("%d orbs after they expired, want %d new ones", len(w.orbs), DefaultOrbs)
	}
}

func TestSpawnNearTheLastArrival(t *testing.T) {
	w := testWorld(nil, nil)
	for range 100 {
		x, y := w.spawnPoint()
		if d := math.Hypot(x-w.s.Width/2, y-w.s.Height/2); d > spawnCentre {
			t.Fatalf("in an empty room, a player starts %.0f from the centre", d)
		}
	}
	for _, at := range [][2]float64{{700, 300}, {0, 0}, {2000, 1990}} {
		w.players["last"] = &player{id: "last", x: at[0], y: at[1]}
		w.lastIn = "last"
		for range 100 {
			x, y := w.spawnPoint()
			d := math.Hypot(x-at[0], y-at[1])
			// Clamping into the room may push it a margin further from
			// a player at a wall.
			if d > spawnFar+math.Hypot(spawnMargin, spawnMargin) || x < spawnMargin || x > w.s.Width-spawnMargin || y < spawnMargin || y > w.s.Height-spawnMargin {
				t.Fatalf("after a player at %v, one starts at %.0f,%.0f: %.0f away", at, x, y, d)
			}
		}
	}
	w.s.Spawn = []float64{10, 20}
	if x, y := w.spawnPoint(); x != 10 || y != 20 {
		t.Errorf("with a spawn point, a player starts at %v,%v", x, y)
	}
}

func TestEndRound(t *testing.T) {
	w := testWorld([]*player{
		{id: "1", name: "zed", score: 4},
		{id: "2", name: "amy", score: 4},
		{id: "3", name: "bo", score: 9},
		{id: "4", name: "cy", score: 1},
		{id: "5", name: "di"},
	}, nil)
	w.round = 7
	top := w.top(3)
	var names []string
	for _, p := range top {
		names = append(names, fmt.Sprint(p.GetName(), p.GetScore()))
	}
	if want := []string{"bo9", "amy4", "zed4"}; !slices.Equal(names, want) {
		t.Errorf("top %v, want %v", names, want)
	}
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	now := time.Now()
	done := make(chan struct{})
	// endRound pushes to the players' sessions (here none exist): run it
	// in an actor, as the world does.
	pid, err := node.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(string); ok {
			w.endRound(c, now)
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = node.Send(pid, "end")
	<-done
	for _, p := range w.players {
		if p.score != 0 {
			t.Errorf("%s's score %d after the round, want 0", p.name, p.score)
		}
	}
	if w.round != 8 || !w.roundEnd.Equal(now.Add(DefaultRound)) {
		t.Errorf("round %d ending at %v, want 8 ending %v", w.round, w.roundEnd, now.Add(DefaultRound))
	}
}

func TestOffer(t *testing.T) {
	b := new(arenapb.Leaderboard)
	board := func() []string {
		var s []string
		for _, e := range b.GetEntries() {
			s = append(s, fmt.Sprint(e.GetName(), e.GetScore()))
		}
		return s
	}
	steps := []struct {
		name    string
		score   uint32
		at      int64
		changed bool
		want    []string
	}{
		{"ada", 0, 1, false, nil},
		{"ada", 3, 1, true, []string{"ada3"}},
		{"bob", 5, 2, true, []string{"bob5", "ada3"}},
		{"cy", 3, 3, true, []string{"bob5", "ada3", "cy3"}}, // a tie: the older first
		{"ADA", 2, 4, false, []string{"bob5", "ada3", "cy3"}},
		{"ADA", 6, 5, true, []string{"ADA6", "bob5", "cy3"}}, // the same name, its new best
	}
	var version uint64
	for _, s := range steps {
		if got := offer(b, s.name, s.score, s.at); got != s.changed {
			t.Errorf("offer %s %d: changed %v, want %v", s.name, s.score, got, s.changed)
		}
		if !slices.Equal(board(), s.want) {
			t.Errorf("after %s %d: %v, want %v", s.name, s.score, board(), s.want)
		}
		if s.changed {
			version++
		}
		if b.GetVersion() != version {
			t.Errorf("after %s %d: version %d, want %d", s.name, s.score, b.GetVersion(), version)
		}
	}
	// It keeps the LeaderboardSize best.
	for i := range LeaderboardSize {
		offer(b, fmt.Sprint("p", i), uint32(10+i), int64(10+i))
	}
	if n := len(b.GetEntries()); n != LeaderboardSize {
		t.Fatalf("%d entries, want %d", n, LeaderboardSize)
	}
	if offer(b, "late", 10, 100) {
		t.Error("a score equal to the last one got on a full leaderboard")
	}
	if !offer(b, "late", 11, 100) || b.GetEntries()[LeaderboardSize-1].GetName() != "late" || b.GetEntries()[0].GetName() != "p9" {
		t.Errorf("after late 11: %v", board())
	}
}

func TestCheckName(t *testing.T) {
	for name, want := range map[string]string{
		"  ada ":                    "ada",
		"Zoë 🙂":                     "Zoë 🙂",
		"with space":                "with space",
		"":                          "",
		" \t ":                      "",
		"x\x07":                     "",
		"1234567890123456":          "1234567890123456",
		"12345678901234567":         "",
		"ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ":          "ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ", // 16 runes, 32 bytes
		"E\u0301va":                 "\u00c9va",         // NFC
		"a   b":                     "a b",
		"\x1b[31mred":               "",
		"evil\u202Egnp.exe":         "",
		"\u2067x\u2069":             "",
		"\u200B":                    "",
		"\u200Bada":                 "",
		"a\u200Db":                  "",
		"\u3164":                    "",
		"\u2800\u2800":              "",
		"\u00a0ada":                 "ada", // trimmed
		"\u0301a":                   "",
		"a\u0301\u0301\u0301\u0301": "", // á and three marks
		"\xff":                      "",
		"\ue000":                    "",
		"@ann":                      "",
		" @ann":                     "",
		"ann@home":                  "ann@home",
	} {
		got, err := checkName(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("checkName(%q) = %q, %v; want %q", name, got, err, want)
		}
		if err != nil && rpc.CodeOf(err) != rpc.InvalidArgument {
			t.Errorf("checkName(%q): %v, want InvalidArgument", name, err)
		}
	}
}

// TestGrainsSurviveTheStore runs the grains on a real bbolt file: a score
// goes to a player's record and on to the leaderboard; the grains and the
// store close (as a server stops) and open again on the same file (as it
// starts): the record and the leaderboard are back.
func TestGrainsSurviveTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arena.db")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := func() (*grain.System, func()) {
		node, err := actor.NewNode(actor.Config{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := embedded.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		// No session subscribes here: the records' pushes (KindPlayer is
		// synced) have nowhere to go.
		push := func(session, route string, msg proto.Message) error { return gate.Push(node, session, route, msg) }
		sys, err := grain.Start(ctx, grain.Config{Node: node, Kinds: grainKinds(), Store: st, Push: push})
		if err != nil {
			t.Fatal(err)
		}
		return sys, func() {
			if err := sys.Close(ctx); err != nil {
				t.Error(err)
			}
			if err := st.Close(); err != nil {
				t.Error(err)
			}
			node.Close()
		}
	}
	sys, stop := start()
	call := func(id grain.Identity, msg any) any {
		t.Helper()
		reply, err := sys.Call(ctx, id, msg)
		if err != nil {
			t.Fatalf("%v %T: %v", id, msg, err)
		}
		return reply
	}
	if rec := call(playerID("Ada"), &arenapb.VisitRequest{Name: "Ada", PlayerId: "p-1"}).(*arenapb.PlayerRecord); rec.GetBest() != 0 || rec.GetVisits() != 1 {
		t.Errorf("a new record: %v", rec)
	}
	r := call(playerID("Ada"), &arenapb.ScoreRequest{Name: "Ada", Score: 7, Gained: 7}).(*arenapb.ScoreReply)
	if r.GetBest() != 7 || len(r.GetLeaderboard().GetEntries()) != 1 {
		t.Errorf("a first score: %v", r)
	}
	r = call(playerID("Ada"), &arenapb.ScoreRequest{Name: "Ada", Score: 2, Gained: 2}).(*arenapb.ScoreReply)
	if r.GetBest() != 7 || r.GetLeaderboard() != nil {
		t.Errorf("a lower score: %v, want best 7 and no leaderboard", r)
	}
	call(playerID("Ada"), &arenapb.RoundRequest{Name: "Ada", Score: 9})
	call(playerID("Ada"), &arenapb.RoundRequest{Name: "Ada"}) // a round she did not score in
	call(playerID("Bo"), &arenapb.ScoreRequest{Name: "Bo", Score: 9, Gained: 9})
	stop()

	sys, stop = start()
	defer stop()
	rec := call(playerID("ADA"), &arenapb.VisitRequest{Name: "ADA"}).(*arenapb.PlayerRecord)
	if rec.GetBest() != 7 || rec.GetTotal() != 9 || rec.GetOrbs() != 2 || rec.GetRounds() != 1 || rec.GetLastRound() != 9 || rec.GetVisits() != 2 || rec.GetName() != "ADA" || rec.GetLastPlayerId() != "p-1" {
		t.Errorf("Ada's record after a restart: %v", rec)
	}
	b := call(leaderboardID, &arenapb.BoardRequest{}).(*arenapb.Leaderboard)
	var got []string
	for _, e := range b.GetEntries() {
		got = append(got, fmt.Sprint(e.GetName(), e.GetScore()))
	}
	if want := []string{"Bo9", "Ada7"}; !slices.Equal(got, want) {
		t.Errorf("the leaderboard after a restart: %v, want %v", got, want)
	}
	if _, err := sys.Call(ctx, leaderboardID, "what?"); rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Errorf("a stray message: %v, want InvalidArgument", err)
	}
}
