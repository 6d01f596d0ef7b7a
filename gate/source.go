package gate

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guildkit/guild/rpc"
)

// limitTable keeps the gateway's limits that outlive a connection: per
// source address (an IPv4 address, or an IPv6 /64) its open connections,
// its new-connection rate and the request rate of its sessions not yet
// logged in; per user the request rate of their sessions. A client that
// reconnects finds its buckets as it left them.
//
// Its mutex is a leaf: nothing is called under it. The table is bounded:
// an entry nobody holds whose buckets are full again is the same as no
// entry, and is dropped when the table reaches its size (sweep); then,
// while it is still above three quarters of its size, other entries
// nobody holds are dropped too (in the map's order). Entries held by live
// connections (two each at most: source and user) stay, so the table
// holds at most its size or, when the held ones are more, them plus a
// quarter of its size: the next sweep waits for that much growth, so
// that a table full of held entries is not swept on every new key.
type limitTable struct {
	mu      sync.Mutex
	entries map[string]*limitEntry
	size    int
	sweepAt int // sweep when the table reaches this many entries
	lim     Limits
}

// limitEntry is one source's or user's limits. Its fields are guarded by
// limitTable.mu.
type limitEntry struct {
	key   string
	refs  int    // connections (source) or sessions (user) holding it
	conns int    // source: connections open
	req   bucket // requests
	dial  bucket // source: new connections
	// source: refused connections told why since toldSince (see open)
	told      int
	toldSince time.Time
}

// bucket is a token bucket; its zero value with a rate of 0 never refuses.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
}

// take takes a token, if there is one.
func (b *bucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true // no limit
	}
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket has refilled to its burst by now.
func (b *bucket) full(now time.Time) bool {
	return b.rate <= 0 || b.last.IsZero() || b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
}

func newLimitTable(lim Limits) *limitTable {
	size := max(1024, 2*lim.MaxConns)
	return &limitTable{entries: make(map[string]*limitEntry), size: size, sweepAt: size, lim: lim}
}

// sourceKey returns the source of a remote address ("host:port", or a
// bare host): the IPv4 address, or the /64 of an IPv6 address, in which
// one subscriber usually has every address. An address that does not
// parse is its own source.
func sourceKey(remote string) string {
	a, ok := addrOf(remote)
	if !ok {
		host := remote
		if h, _, err := net.SplitHostPort(remote); err == nil {
			host = h
		}
		return "s:" + host
	}
	if a.Is4() {
		return "s:" + a.String()
	}
	p, _ := a.Prefix(64)
	return "s:" + p.String()
}

// addrOf parses the address of remote ("host:port", or a bare host).
func addrOf(remote string) (netip.Addr, bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// trusted reports whether remote is one of Limits.TrustedProxies.
func (t *limitTable) trusted(remote string) bool {
	if len(t.lim.TrustedProxies) == 0 {
		return false
	}
	a, ok := addrOf(remote)
	return ok && t.trustedAddr(a)
}

func (t *limitTable) trustedAddr(a netip.Addr) bool {
	return slices.ContainsFunc(t.lim.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// forwardedClient returns the client a trusted proxy names in r's
// X-Forwarded-For: the rightmost address that is not itself a trusted
// proxy (each proxy appends the address it was reached from), or "" when
// there is none that parses.
func (t *limitTable) forwardedClient(r *http.Request) string {
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := addrOf(hops[i])
		if !ok {
			return "" // a hop that does not parse: trust nothing left of it
		}
		if !t.trustedAddr(a) {
			return a.String()
		}
	}
	return ""
}

// isLoopback reports whether remote ("host:port") is a loopback address.
func isLoopback(remote string) bool {
	a, ok := addrOf(remote)
	return ok && a.IsLoopback()
}

// userKey returns the key of a user's entry.
func userKey(uid string) string { return "u:" + uid }

// getLocked returns the entry of key, made if needed, with one more ref.
func (t *limitTable) getLocked(key string, now time.Time, source bool) *limitEntry {
	e := t.entries[key]
	if e == nil {
		if len(t.entries) >= t.sweepAt {
			t.sweepLocked(now)
			t.sweepAt = max(t.size, len(t.entries)+t.size/4)
		}
		e = &limitEntry{key: key}
		if source {
			e.req = newBucket(t.lim.SourceRate, t.lim.SourceBurst)
			e.dial = newBucket(t.lim.ConnRate, t.lim.ConnBurst)
		} else {
			e.req = newBucket(t.lim.Rate, t.lim.Burst)
		}
		t.entries[key] = e
	}
	e.refs++
	return e
}

// sweepLocked drops the entries nobody holds whose buckets are full, then,
// while the table is still at its size, other entries nobody holds.
func (t *limitTable) sweepLocked(now time.Time) {
	for k, e := range t.entries {
		if e.refs == 0 && e.req.full(now) && e.dial.full(now) {
			delete(t.entries, k)
		}
	}
	for k, e := range t.entries {
		if len(t.entries) < t.size*3/4 {
			break
		}
		if e.refs == 0 {
			delete(t.entries, k)
		}
	}
}

// open counts a new connection from remote against its source's limits:
// the connections open at once and the rate of new ones. It returns the
// source's entry, to give back with close, or the ending that refuses the
// connection.
func (t *limitTable) open(remote string, now time.Time) (*limitEntry, ending, bool) {
	if !t.lim.LimitLoopback && isLoopback(remote) || t.trusted(remote) {
		return nil, ending{}, true
	}
	key := sourceKey(remote)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.getLocked(key, now, true)
	var refusal ending
	switch {
	case t.lim.PerSourceConns > 0 && e.conns >= t.lim.PerSourceConns:
		refusal = sourceFull(t.lim.PerSourceConns)
	case !e.dial.take(now):
		refusal = sourceRate(t.lim.ConnRate, t.lim.ConnBurst)
	default:
		e.conns++
		return e, ending{}, true
	}
	// Past refusalTells refused connections told why in a second, a
	// source's next ones are closed without a word: a flood of
	// connections from one address costs an accept and a close each, no
	// write and no linger.
	if now.Sub(e.toldSince) >= time.Second {
		e.told, e.toldSince = 0, now
	}
	refusal.silent = e.told >= refusalTells
	if !refusal.silent {
		e.told++
	}
	e.refs--
	return nil, refusal, false
}

// refusalTells is how many refused connections of one source a second are
// told why; the others are closed without a word.
const refusalTells = 8

// close gives back a connection's source entry; nil is no entry.
func (t *limitTable) close(e *limitEntry) {
	if e == nil {
		return
	}
	t.mu.Lock()
	e.conns--
	e.refs--
	t.mu.Unlock()
}

// user returns the entry of a user, held until release.
func (t *limitTable) user(uid string) *limitEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.getLocked(userKey(uid), time.Now(), false)
}

// release gives back a user's entry; nil is no entry.
func (t *limitTable) release(e *limitEntry) {
	if e == nil {
		return
	}
	t.mu.Lock()
	e.refs--
	t.mu.Unlock()
}

// take takes a request token from e.
func (t *limitTable) take(e *limitEntry, now time.Time) bool {
	t.mu.Lock()
	ok := e.req.take(now)
	t.mu.Unlock()
	return ok
}

// len returns the number of entries, for tests.
func (t *limitTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// sourceFull is the ending of a connection refused because its source
// has PerSourceConns connections open: Close{8}, CauseSourceConns
// (WebSocket 1013, try again later).
func sourceFull(n int) ending {
	e := endingOf(rpc.ResourceExhausted, fmt.Sprintf("too many connections from your address (limit %d)", n))
	e.cause, e.refuse = CauseSourceConns, true
	return e
}

// sourceRate is the ending of a connection refused because its source
// opens connections faster than ConnRate: Close{8}, CauseSourceRate
// (WebSocket 1013).
func sourceRate(rate float64, burst int) ending {
	e := endingOf(rpc.ResourceExhausted, fmt.Sprintf("your address opens connections too fast (limit %g per second, bursts of %d)", rate, burst))
	e.cause, e.refuse = CauseSourceRate, true
	return e
}
