package arena

import "time"

// ChatRate and ChatBurst bound what each user says: ChatRate lines a
// second on average, ChatBurst at once. A line beyond them is refused
// with ResourceExhausted and reaches nobody, so that a few flooding
// players cannot fill everyone's screen (nor their write queues; the
// room's group also bounds its broadcasts, see gate.Limits.GroupRate).
// The budget is kept by each chat node: with several, a user's requests
// go to them in turn, and the bound is that many times these.
const (
	ChatRate  = 2
	ChatBurst = 5
)

// chatIdle is how long a speaker's budget is kept after their last line:
// by then it has refilled, so forgetting it changes nothing.
const chatIdle = time.Duration(ChatBurst/ChatRate+1) * time.Second

// speakers is the chat service's per-user budget. It is used by the
// service's actor only (its handlers run one at a time): it is not safe
// for concurrent use. Its memory is bounded by the users who spoke in
// the last chatIdle.
type speakers struct {
	by    map[string]*speaker
	swept time.Time
}

type speaker struct {
	tokens float64
	at     time.Time
}

// allow reports whether user may say a line at now, and takes its token.
func (s *speakers) allow(user string, now time.Time) bool {
	if s.by == nil {
		s.by = make(map[string]*speaker)
	}
	if now.Sub(s.swept) > chatIdle {
		for u, sp := range s.by {
			if now.Sub(sp.at) > chatIdle {
				delete(s.by, u)
			}
		}
		s.swept = now
	}
	sp, ok := s.by[user]
	if !ok {
		sp = &speaker{tokens: ChatBurst, at: now}
		s.by[user] = sp
	}
	sp.tokens = min(ChatBurst, sp.tokens+now.Sub(sp.at).Seconds()*ChatRate)
	sp.at = now
	if sp.tokens < 1 {
		return false
	}
	sp.tokens--
	return true
}
