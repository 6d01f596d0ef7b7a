package gate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/gate/internal/nodepb"
)

// Sealed session records: resume after a gateway died. A session's
// record (user, roles, expiry, state, groups) lives in its gateway's
// memory, so a gateway killed outright takes it along, and its clients
// could only log in again. With Config.ResumeKey, the gateway also seals
// the record into the session's resume token, encrypted and
// authenticated with AES-256-GCM under a key derived from ResumeKey, and
// gives the client a fresh token whenever the record changes
// (SessionUpdate frames) and at least every half ResumeWindow. A
// gateway that gets a token whose gateway does not answer opens the
// record and starts the session from it: same user, state and groups,
// new session ID, and the client is told to resync (HandshakeAck.resync),
// since the pushes its old gateway held died with it. Every gateway of
// a cluster needs the same ResumeKey.
//
// A sealed record resumes only when:
//   - it opens under the key and belongs to the token it came in (the
//     session ID and secret are its associated data);
//   - the session it names does not answer: its node is not a member, or
//     is unreachable, or is a later process of that node (the record
//     carries when the sealing process joined the membership); the
//     sealing process itself, when it answers that it no longer has the
//     session or refuses the secret, refuses the resume;
//   - it was sealed at most ResumeWindow + ResumeWindow/2 + Heartbeat
//     ago (gateways' clocks must agree to within a second or so: NTP);
//   - its login has not expired (Identity.Expires);
//   - the directory does not bind its user to another session (a replay
//     of an old token while the user is on again is refused).
//
// A token leaked while its gateway is dead can be replayed like a
// resume secret can; a sealed record cannot be read or forged without
// the key.

// MinResumeKeyLen is the shortest Config.ResumeKey.
const MinResumeKeyLen = 16

// maxSealedRecord bounds a record sealed into a token: a session whose
// record (its state, mostly) is larger gets a token without one, and
// does not survive its gateway's death.
const maxSealedRecord = 4096

// tokenSealSep separates a resume token's session part
// ("<session ID>.<secret>") from its sealed record; it occurs in neither
// (base64url has no '~', session IDs are digits, dots and a slash).
const tokenSealSep = "~"

// sealInfo is the HKDF info of the sealing key: a new sealing scheme
// takes a new one.
const sealInfo = "guild gate resume record v1"

// tokenKey is the coalescing key of SessionUpdate frames in a client's
// write queue: a newer token takes the place of one not sent yet. User
// keys cannot collide: it starts with a NUL.
const tokenKey = "\x00guild.resume-token"

var (
	errSealOpen  = errors.New("the sealed record does not open under this gateway's ResumeKey")
	errSealStale = errors.New("the sealed record is older than the resume window")
)

// newSealer returns the AEAD of key, or nil for no key.
func newSealer(key []byte) (cipher.AEAD, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) < MinResumeKeyLen {
		return nil, fmt.Errorf("%w: ResumeKey has %d bytes, at least %d are needed", ErrBadConfig, len(key), MinResumeKeyLen)
	}
	k, err := hkdf.Key(sha256.New, key, nil, sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealMaxAge is how old a sealed record may be: ResumeWindow after the
// disconnection, which came at most half a window (the refresh) plus a
// heartbeat (the client's silence that shows the refresh due) after the
// record was sealed.
func (g *Gateway) sealMaxAge() time.Duration {
	return g.lim.ResumeWindow + g.lim.ResumeWindow/2 + g.lim.Heartbeat
}

// sealRecord returns the session's record sealed for its current token,
// base64url, or "" when the gateway has no ResumeKey or the record is too
// large.
func (s *session) sealRecord(now time.Time) string {
	if s.g.sealer == nil || s.secret == "" {
		return ""
	}
	rec := &nodepb.ResumeRecord{
		UserId: s.userID,
		Roles:  s.id.Roles,
		State:  s.state,
		Groups: slices.Sorted(maps.Keys(s.groups)),
		Issued: now.UnixNano(),

		NodeStarted: s.g.nodeStarted(),
	}
	if !s.id.Expires.IsZero() {
		rec.Expires = s.id.Expires.UnixNano()
	}
	plain, err := proto.Marshal(rec)
	if err != nil || len(plain) > maxSealedRecord {
		s.g.log.Debug("gate: the session's record is not sealed into its resume token", "session", s.info.ID, "bytes", len(plain), "err", err)
		return ""
	}
	ns := s.g.sealer.NonceSize()
	out := make([]byte, ns, ns+len(plain)+s.g.sealer.Overhead())
	_, _ = rand.Read(out)
	out = s.g.sealer.Seal(out, out[:ns], plain, []byte(s.info.ID+"."+s.secret))
	return base64.RawURLEncoding.EncodeToString(out)
}

// openRecord opens the sealed record of a resume token whose session
// part ("<session ID>.<secret>") is part.
func (g *Gateway) openRecord(sealed, part string, now time.Time) (*nodepb.ResumeRecord, error) {
	if g.sealer == nil {
		return nil, errSealOpen
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	ns := g.sealer.NonceSize()
	if err != nil || len(b) < ns {
		return nil, errSealOpen
	}
	plain, err := g.sealer.Open(nil, b[:ns], b[ns:], []byte(part))
	if err != nil {
		return nil, errSealOpen
	}
	var rec nodepb.ResumeRecord
	if err := proto.Unmarshal(plain, &rec); err != nil || rec.GetUserId() == "" {
		return nil, errSealOpen
	}
	if age := now.Sub(time.Unix(0, rec.GetIssued())); age > g.sealMaxAge() || age < -g.sealMaxAge() {
		return nil, fmt.Errorf("%w (sealed %v ago)", errSealStale, age.Round(time.Millisecond))
	}
	return &rec, nil
}

// splitSealed splits a resume token into its session part and its
// sealed record ("" when it has none).
func splitSealed(tok string) (string, string) {
	part, sealed, _ := strings.Cut(tok, tokenSealSep)
	return part, sealed
}

// reseal seals the session's record afresh into its token (a no-op
// without a ResumeKey or a secret).
func (s *session) reseal(now time.Time) {
	if s.g.sealer == nil || s.secret == "" {
		return
	}
	s.sealed, s.sealedAt, s.recordChanged = s.sealRecord(now), now, false
}

// renewToken seals the session's record afresh into its token, and tells
// the client (a SessionUpdate, which replaces one not sent yet) when it
// is attached: after its record changed, or when the token is half a
// window old. Without a ResumeKey it does nothing.
func (s *session) renewToken(c *actor.Context, now time.Time) {
	s.recordChanged = false
	if s.g.sealer == nil || s.secret == "" || s.ending || !s.movedTo.IsZero() {
		return
	}
	s.reseal(now)
	if s.att == nil {
		return
	}
	b, err := gatepb.Encode(&gatepb.Frame{Body: &gatepb.Frame_SessionUpdate{SessionUpdate: &gatepb.SessionUpdate{UserId: s.userID, ResumeToken: s.resumeToken()}}})
	if err != nil {
		s.g.log.Error("gate: cannot encode a frame", "session", s.info.ID, "err", err)
		return
	}
	s.queue(c, b, tokenKey, false)
}

// tokenDue reports whether the session's sealed token is to be renewed:
// its record changed, or the token is half a window old.
func (s *session) tokenDue(now time.Time) bool {
	if s.g.sealer == nil || s.secret == "" || s.att == nil {
		return false
	}
	return s.recordChanged || now.Sub(s.sealedAt) >= s.g.lim.ResumeWindow/2
}

// checkToken renews the session's sealed token when it is due; the
// session calls it after each message and each reply it handles.
func (s *session) checkToken(c *actor.Context) {
	if s.g.sealer == nil {
		return
	}
	if now := time.Now(); s.tokenDue(now) {
		s.renewToken(c, now)
	}
}
