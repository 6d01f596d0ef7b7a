package arena

import (
	"cmp"
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
)

// The world module's kinds of grain. Their state is kept in the module's
// store (WorldSettings.Store), so the leaderboard and each name's best
// score outlive the server.
const (
	// KindPlayer is a name's record (arenapb.PlayerRecord), keyed by the
	// name in lower case: its best round score, the orbs it picked up,
	// the rounds it scored in and how often it joined. It answers
	// VisitRequest, ScoreRequest and RoundRequest, and offers each
	// new best to the leaderboard. Its state is synced (grain.Kind.Sync):
	// a player subscribes to its own record with RouteStats, and sees
	// every field but the private last_player_id.
	KindPlayer = "arena.player"
	// KindLeaderboard is the leaderboard (arenapb.Leaderboard), one grain
	// of key LeaderboardKey. It answers OfferRequest and BoardRequest.
	KindLeaderboard = "arena.leaderboard"
	// LeaderboardKey is the key of the one leaderboard grain.
	LeaderboardKey = "top"
	// LeaderboardSize is how many names the leaderboard keeps.
	LeaderboardSize = 10
)

// flushEvery is how often a grain whose state changed writes it to the
// store. A graceful stop flushes everything; a crash loses at most this.
const flushEvery = 2 * time.Second

// leaderboardID is the identity of the leaderboard grain.
var leaderboardID = grain.Identity{Kind: KindLeaderboard, Key: LeaderboardKey}

// playerID returns the identity of the record of name.
func playerID(name string) grain.Identity {
	return grain.Identity{Kind: KindPlayer, Key: nameKey(name)}
}

// grainKinds returns the kinds of grain the world module hosts.
func grainKinds() []grain.Kind {
	return []grain.Kind{
		{
			Name:       KindPlayer,
			New:        func(grain.Identity) grain.Actor { return grain.ActorFunc(playerGrain) },
			State:      func() any { return new(arenapb.PlayerRecord) },
			FlushEvery: flushEvery,
			// The default check, that the subscriber's user ID is the
			// grain's key, holds for arena.Stats: the arena service
			// subscribes a session to the record of the name it plays,
			// as that name's key (see statsSubscribe).
			Sync: &grain.SyncOptions{},
		},
		{
			Name:       KindLeaderboard,
			New:        func(grain.Identity) grain.Actor { return grain.ActorFunc(leaderboardGrain) },
			State:      func() any { return new(arenapb.Leaderboard) },
			FlushEvery: flushEvery,
		},
	}
}

// playerGrain is the behaviour of an arena.player grain. Its replies are
// copies: the state stays the grain's own.
func playerGrain(c *grain.Context) {
	rec := c.State().(*arenapb.PlayerRecord)
	switch m := c.Message().(type) {
	case *arenapb.VisitRequest:
		rec.Name = m.GetName()
		rec.Visits++
		if m.GetPlayerId() != "" {
			rec.LastPlayerId = m.GetPlayerId()
		}
		c.Respond(proto.CloneOf(rec))
	case *arenapb.RoundRequest:
		if m.GetScore() > 0 {
			rec.Rounds++
			rec.LastRound = m.GetScore()
		}
		if c.IsRequest() {
			c.Respond(&emptypb.Empty{})
		}
	case *arenapb.ScoreRequest:
		if rec.Name == "" {
			rec.Name = m.GetName()
		}
		rec.Total += uint64(m.GetGained())
		if m.GetGained() > 0 {
			rec.Orbs++
		}
		reply := &arenapb.ScoreReply{Best: rec.GetBest()}
		if m.GetScore() > rec.GetBest() {
			now := time.Now().UnixMilli()
			rec.Best, rec.BestUnixMs = m.GetScore(), now
			reply.Best = rec.Best
			// A new best goes to the leaderboard grain, wherever it runs;
			// the world gets the leaderboard back when it changed.
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			board, err := c.System().Call(ctx, leaderboardID, &arenapb.OfferRequest{Name: m.GetName(), Score: rec.Best, UnixMs: now})
			if err != nil {
				c.Actor().Logger().Warn("arena: the leaderboard did not take a score", "name", m.GetName(), "score", rec.Best, "err", err)
			} else if b, ok := board.(*arenapb.Leaderboard); ok {
				reply.Leaderboard = b
			}
		}
		c.Respond(reply)
	default:
		if c.IsRequest() {
			c.Respond(rpc.Errorf(rpc.InvalidArgument, "arena.player: unexpected %T", m))
		}
	}
}

// leaderboardGrain is the behaviour of the arena.leaderboard grain.
func leaderboardGrain(c *grain.Context) {
	board := c.State().(*arenapb.Leaderboard)
	switch m := c.Message().(type) {
	case *arenapb.OfferRequest:
		offer(board, m.GetName(), m.GetScore(), m.GetUnixMs())
		c.Respond(proto.CloneOf(board))
	case *arenapb.BoardRequest:
		c.Respond(proto.CloneOf(board))
	default:
		if c.IsRequest() {
			c.Respond(rpc.Errorf(rpc.InvalidArgument, "arena.leaderboard: unexpected %T", m))
		}
	}
}

// offer puts name's score on board if it is that name's best and among
// the LeaderboardSize best, and reports whether board changed (its
// version then grows). Entries are sorted by score, best first; of two
// equal scores the older one ranks first. Names are compared in lower
// case, and an entry takes the name as last offered.
func offer(board *arenapb.Leaderboard, name string, score uint32, unixMs int64) bool {
	if score == 0 {
		return false
	}
	key := nameKey(name)
	i := slices.IndexFunc(board.Entries, func(e *arenapb.LeaderboardEntry) bool { return nameKey(e.GetName()) == key })
	switch {
	case i >= 0 && board.Entries[i].GetScore() >= score:
		return false
	case i >= 0:
		board.Entries[i] = &arenapb.LeaderboardEntry{Name: name, Score: score, UnixMs: unixMs}
	case len(board.Entries) >= LeaderboardSize && board.Entries[len(board.Entries)-1].GetScore() >= score:
		return false
	default:
		board.Entries = append(board.Entries, &arenapb.LeaderboardEntry{Name: name, Score: score, UnixMs: unixMs})
	}
	slices.SortStableFunc(board.Entries, func(a, b *arenapb.LeaderboardEntry) int {
		return cmp.Or(cmp.Compare(b.GetScore(), a.GetScore()), cmp.Compare(a.GetUnixMs(), b.GetUnixMs()))
	})
	board.Entries = board.Entries[:min(len(board.Entries), LeaderboardSize)]
	board.Version++
	return true
}
