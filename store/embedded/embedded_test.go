package embedded_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/embedded"
	"github.com/guildkit/guild/store/storetest"
)

func open(tb testing.TB) *embedded.Store {
	tb.Helper()
	s, err := embedded.Open(filepath.Join(tb.TempDir(), "guild.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// TestReopen: documents survive Close and Open.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guild.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(ctx, "player", "p1", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data, v, err := s.Load(ctx, "player", "p1")
	if err != nil || v != 1 || string(data) != "kept" {
		t.Fatalf("Load after reopen = %q, %d, %v; want \"kept\", 1, nil", data, v, err)
	}
}

// TestLocked: a second Open of a file in use fails instead of hanging.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guild.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := embedded.Open(path); err == nil {
		s2.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
}

func BenchmarkSave(b *testing.B) { storetest.BenchSave(b, open(b)) }
func BenchmarkLoad(b *testing.B) { storetest.BenchLoad(b, open(b)) }
