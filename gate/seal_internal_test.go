package gate

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
)

func sealTestGateway(t testing.TB, key string) *Gateway {
	t.Helper()
	sealer, err := newSealer([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return &Gateway{sealer: sealer, lim: Limits{ResumeWindow: 30 * time.Second, Heartbeat: 10 * time.Second}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestSealedRecord: a record sealed into a token opens under the same key
// for the same session part, within the age allowed, and not otherwise;
// a record too large is not sealed; a short key is refused.
func TestSealedRecord(t *testing.T) {
	g := sealTestGateway(t, "0123456789abcdef0123456789abcdef")
	exp := time.Now().Add(time.Hour).Round(0)
	s := &session{g: g, info: SessionInfo{ID: "1.1.1/7"}, secret: "sekrit", userID: "ana",
		id: Identity{Roles: []string{"admin"}, Expires: exp}, state: map[string]string{"team": "red"}, groups: map[string]bool{"room": true, "lobby": true}}
	now := time.Now()
	sealed := s.sealRecord(now)
	if sealed == "" || strings.ContainsAny(sealed, ".~") {
		t.Fatalf("sealed %q", sealed)
	}
	if strings.Contains(sealed, "ana") || strings.Contains(sealed, "red") {
		t.Fatalf("the sealed record shows its contents: %q", sealed)
	}
	rec, err := g.openRecord(sealed, "1.1.1/7.sekrit", now)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetUserId() != "ana" || rec.GetState()["team"] != "red" || strings.Join(rec.GetGroups(), ",") != "lobby,room" ||
		strings.Join(rec.GetRoles(), ",") != "admin" || rec.GetExpires() != exp.UnixNano() || rec.GetIssued() != now.UnixNano() {
		t.Fatalf("opened %v", rec)
	}
	for _, tc := range []struct {
		name         string
		g            *Gateway
		sealed, part string
		at           time.Time
		want         error
	}{
		{"another session", g, sealed, "1.1.1/8.sekrit", now, errSealOpen},
		{"another secret", g, sealed, "1.1.1/7.other", now, errSealOpen},
		{"another key", sealTestGateway(t, "fedcba9876543210fedcba9876543210"), sealed, "1.1.1/7.sekrit", now, errSealOpen},
		{"no key", &Gateway{}, sealed, "1.1.1/7.sekrit", now, errSealOpen},
		{"not base64", g, "!!" + sealed, "1.1.1/7.sekrit", now, errSealOpen},
		{"cut short", g, sealed[:10], "1.1.1/7.sekrit", now, errSealOpen},
		{"too old", g, sealed, "1.1.1/7.sekrit", now.Add(g.sealMaxAge() + time.Second), errSealStale},
	} {
		if _, err := tc.g.openRecord(tc.sealed, tc.part, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := g.openRecord(sealed, "1.1.1/7.sekrit", now.Add(g.sealMaxAge()-time.Second)); err != nil {
		t.Errorf("just within the age: %v", err)
	}
	s.state["big"] = strings.Repeat("x", maxSealedRecord)
	if got := s.sealRecord(now); got != "" {
		t.Errorf("a record over maxSealedRecord was sealed (%d bytes)", len(got))
	}
	if _, err := newSealer([]byte("short")); !errors.Is(err, ErrBadConfig) {
		t.Errorf("a 5-byte key: %v, want ErrBadConfig", err)
	}
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := New(Config{Node: n, ResumeKey: []byte("0123456789abcdef")}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("a ResumeKey without a ResumeWindow: %v, want ErrBadConfig", err)
	}
}

// FuzzOpenRecord: whatever a client puts in a resume token's sealed part,
// opening it fails cleanly or yields a record with a user; it never
// panics.
func FuzzOpenRecord(f *testing.F) {
	g := sealTestGateway(f, "0123456789abcdef0123456789abcdef")
	s := &session{g: g, info: SessionInfo{ID: "1.1.1/7"}, secret: "sekrit", userID: "ana", state: map[string]string{"k": "v"}}
	now := time.Now()
	f.Add(s.sealRecord(now), "1.1.1/7.sekrit")
	f.Add("", "")
	f.Add("AAAA", "x.y")
	f.Fuzz(func(t *testing.T, sealed, part string) {
		rec, err := g.openRecord(sealed, part, now)
		if err == nil && rec.GetUserId() == "" {
			t.Fatalf("a record without a user opened: %v", rec)
		}
		splitSealed(part + "~" + sealed)
	})
}

// BenchmarkSealRecord: sealing a typical session record (a user, two
// roles, four state keys, two groups) into a token, as a session does
// after each change of its record; and opening it, as a gateway does for
// a resume after a gateway died.
func BenchmarkSealRecord(b *testing.B) {
	g := sealTestGateway(b, "0123456789abcdef0123456789abcdef")
	s := &session{g: g, info: SessionInfo{ID: "1.1.1/4242"}, secret: newSecret(), userID: "player-123456",
		id:     Identity{Roles: []string{"player", "vip"}},
		state:  map[string]string{"room": "r-17", "team": "red", "level": "42", "zone": "north"},
		groups: map[string]bool{"guild:dragons": true, "world": true}}
	now := time.Now()
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		var sealed string
		for b.Loop() {
			sealed = s.sealRecord(now)
		}
		b.ReportMetric(float64(len(sealed)), "sealed-bytes")
	})
	sealed := s.sealRecord(now)
	part := s.info.ID + "." + s.secret
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.openRecord(sealed, part, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
