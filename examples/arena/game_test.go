package arena_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store/embedded"
)

// TestPickupScores plays the game over the real gateway: alice steers
// onto an orb and scores its value, which bob sees in his updates and
// the leaderboard (a grain) shows to both.
func TestPickupScores(t *testing.T) {
	d := runDemo(t, fastWorld)
	alice := join(t, d.ws, "alice")
	bob := join(t, d.ws, "bob")
	if alice.joined.GetPickupRadius() != arena.PickupRadius || alice.joined.GetRound() != 1 || alice.joined.GetRoundLeftMs() == 0 {
		t.Errorf("alice's join reply: %v", alice.joined)
	}
	score := alice.collect(t)
	// Orbs are worth 1 (5 for a gold one); her path may cross two in one
	// tick, so the first score is a positive sum of those.
	if score < 1 {
		t.Errorf("alice scored %d for her first orbs, want at least 1", score)
	}
	for _, p := range []*testPlayer{alice, bob} {
		waitFor(t, p.name+"'s leaderboard to show alice", func() bool {
			s, ok := p.onBoard("alice")
			return ok && s >= score
		})
	}
	// Alice comes back to bob (she may pick up more on her way).
	alice.goTo(t, 1000, 1000)
	waitFor(t, "bob to see alice's score", func() bool {
		p, ok := bob.sees(alice.id)
		return ok && p.GetScore() == alice.score() && p.GetScore() >= score
	})
}

// TestLeaderboardSurvivesRestart plays, stops the demo, finds the
// leaderboard in the bbolt file, and starts the demo again on it: the
// leaderboard and alice's best are back.
func TestLeaderboardSurvivesRestart(t *testing.T) {
	world := fastWorld
	world.Store = filepath.Join(t.TempDir(), "data", "arena.db")
	d := runDemo(t, world)
	alice := join(t, d.ws, "Alice")
	score := alice.collect(t)
	waitFor(t, "the leaderboard to show alice", func() bool { s, ok := alice.onBoard("Alice"); return ok && s == score })
	_ = alice.c.Close()
	d.stop()

	// The stopped demo wrote the leaderboard grain's state to the file.
	st, err := embedded.Open(world.Store)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := st.Load(context.Background(), arena.KindLeaderboard, arena.LeaderboardKey)
	if err != nil {
		t.Fatalf("the leaderboard in the store: %v", err)
	}
	var board arenapb.Leaderboard
	if err := proto.Unmarshal(data, &board); err != nil {
		t.Fatal(err)
	}
	if len(board.GetEntries()) != 1 || board.GetEntries()[0].GetName() != "Alice" || board.GetEntries()[0].GetScore() != score {
		t.Errorf("the stored leaderboard: %v, want Alice with %d", &board, score)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	d = runDemo(t, world)
	carol := join(t, d.ws, "carol")
	if s, ok := carol.onBoard("Alice"); !ok || s != score {
		t.Errorf("carol's leaderboard after the restart: %v, want Alice with %d", carol.joined.GetLeaderboard(), score)
	}
	alice = join(t, d.ws, "alice") // the same name, in another case
	if alice.joined.GetBest() != score || alice.joined.GetScore() != 0 {
		t.Errorf("alice after the restart: best %d, score %d; want best %d, score 0", alice.joined.GetBest(), alice.joined.GetScore(), score)
	}
}

// TestDuplicateNames checks that a name is unique among the players
// online, whatever its case, and free again once its player has left.
func TestDuplicateNames(t *testing.T) {
	d := runDemo(t, fastWorld)
	alice := join(t, d.ws, "alice")
	other, err := tryJoin(t, "tcp://"+d.tcp, &arenapb.JoinRequest{Name: " ALICE "})
	if rpc.CodeOf(err) != rpc.AlreadyExists || !strings.Contains(err.Error(), `the name "ALICE" is taken`) {
		t.Fatalf("a second alice: %v, want AlreadyExists saying the name is taken", err)
	}
	// The refused session may take another name.
	if err := other.join(t, &arenapb.JoinRequest{Name: "bob"}); err != nil {
		t.Fatalf("bob after a refused name: %v", err)
	}
	// A player may join again under its own name, and change it.
	if err := alice.join(t, &arenapb.JoinRequest{Name: "alice"}); err != nil {
		t.Errorf("alice joining again: %v", err)
	}
	if err := alice.join(t, &arenapb.JoinRequest{Name: "Bob"}); rpc.CodeOf(err) != rpc.AlreadyExists {
		t.Errorf("alice renaming herself Bob: %v, want AlreadyExists", err)
	}
	if err := alice.join(t, &arenapb.JoinRequest{Name: "Alicia"}); err != nil {
		t.Errorf("alice renaming herself Alicia: %v", err)
	}
	// The name alice is free now, and Alicia once she leaves.
	join(t, d.ws, "alice")
	if err := alice.c.Request(testCtx(t), arena.RouteLeave, &emptypb.Empty{}, nil); err != nil {
		t.Fatal(err)
	}
	join(t, d.ws, "alicia")
	for _, name := range []string{"a\x00b", "tab\there", "zero\u200bwidth"} {
		if _, err := tryJoin(t, d.ws, &arenapb.JoinRequest{Name: name}); rpc.CodeOf(err) != rpc.InvalidArgument {
			t.Errorf("join as %q: %v, want InvalidArgument", name, err)
		}
	}
}

// TestSpawnInView checks that, without a spawn point, each player starts
// near the one who arrived before, wherever that one went: within a
// view, so that each sees the other in its first update.
func TestSpawnInView(t *testing.T) {
	world := fastWorld
	world.Spawn = nil
	d := runDemo(t, world)
	prev := join(t, d.ws, "p0")
	waitFor(t, "p0's first update", func() bool { me, _ := prev.me(); return me != nil })
	for i := 1; i <= 4; i++ {
		// The one before walks off first.
		prev.move(t, float32(i%2*2-1), 0.5)
		prev.waitNextTicks(t, 3)
		prev.move(t, 0, 0)
		prev.waitNextTicks(t, 2)
		p := join(t, d.ws, "p"+string(rune('0'+i)))
		waitFor(t, p.name+" to see the player before", func() bool { _, ok := p.sees(prev.id); return ok })
		q, _ := p.sees(prev.id)
		me, _ := p.me()
		if dd := math.Hypot(float64(q.GetX()-me.GetX()), float64(q.GetY()-me.GetY())); dd > 200 {
			t.Errorf("%s starts %.0f from %s", p.name, dd, prev.name)
		}
		prev = p
	}
}

// TestResume checks that a player that reconnects with its resume token
// keeps its place and score on its new session, and that the old
// session's end no longer removes it.
func TestResume(t *testing.T) {
	d := runDemo(t, fastWorld)
	alice := join(t, d.ws, "alice")
	score := alice.collect(t)
	resume := alice.joined.GetResume()

	again, err := tryJoin(t, d.ws, &arenapb.JoinRequest{Name: "alice", Resume: resume})
	if err != nil {
		t.Fatalf("resuming alice: %v", err)
	}
	if again.id != alice.id || again.joined.GetScore() != score {
		t.Errorf("resumed as %s with %d, want %s with %d", again.id, again.joined.GetScore(), alice.id, score)
	}
	_ = alice.c.Close()
	again.waitNextTicks(t, 10)
	if me, _ := again.me(); me == nil || me.GetScore() != score {
		t.Errorf("alice after her old session closed: %v, want her with %d", me, score)
	}
	// Without the token, the name is taken; with a wrong one too.
	for _, token := range []string{"", "not-a-token"} {
		if _, err := tryJoin(t, d.ws, &arenapb.JoinRequest{Name: "alice", Resume: token}); rpc.CodeOf(err) != rpc.AlreadyExists {
			t.Errorf("alice with resume %q: %v, want AlreadyExists", token, err)
		}
	}
}

// TestRounds checks a round's end: every player is told the best players
// of the round, and the scores start again from zero in the next one.
func TestRounds(t *testing.T) {
	world := fastWorld
	world.Round = arena.Duration(1500 * time.Millisecond)
	d := runDemo(t, world)
	alice := join(t, d.ws, "alice")
	bob := join(t, d.ws, "bob")
	score := alice.collect(t) // and she stops: her score stays
	var over *arenapb.RoundOver
	waitFor(t, "the end of a round that alice scored in", func() bool {
		for _, r := range bob.roundsOver() {
			if len(r.GetTop()) > 0 {
				over = r
				return true
			}
		}
		return false
	})
	// Alice is in the top with her score. Bob, who stands still, may have
	// scored too, when an orb happened to appear within his reach: the
	// top lists only players who scored, best first.
	aliceOnTop := false
	for i, p := range over.GetTop() {
		if p.GetName() == "alice" && p.GetScore() >= score {
			aliceOnTop = true
		}
		if p.GetScore() == 0 || (i > 0 && p.GetScore() > over.GetTop()[i-1].GetScore()) {
			aliceOnTop = false
			break
		}
	}
	if !aliceOnTop || over.GetNext() != over.GetRound()+1 {
		t.Errorf("the round's end: %v, want alice in the top with %d or more, only scorers, best first", over, score)
	}
	waitFor(t, "the next round", func() bool { _, u := alice.me(); return u.GetRound() >= over.GetNext() })
	if s := alice.score(); s != 0 {
		t.Errorf("alice's score in the next round: %d, want 0", s)
	}
	if s, ok := alice.onBoard("alice"); !ok || s < score {
		t.Errorf("the leaderboard after the round: alice %d, %v; want %d or more", s, ok, score)
	}
}
