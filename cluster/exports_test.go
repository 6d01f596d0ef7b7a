package cluster_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

func TestParseExports(t *testing.T) {
	got, err := cluster.ParseExports([]byte("2.7.3,2.7.1"))
	if err != nil || !slices.Equal(got, []actor.Addr{actor.MustAddr(2, 7, 1), actor.MustAddr(2, 7, 3)}) {
		t.Fatalf("ParseExports = %v, %v", got, err)
	}
	if got, err := cluster.ParseExports(nil); err != nil || got != nil {
		t.Fatalf("empty list: %v, %v", got, err)
	}
	for _, bad := range []string{",", "2.7", "2.7.1,", "2.255.1", "0.0.0", "2.7.1,2.7.1", "x.y.z", strings.Repeat("1.1.1,", cluster.MaxExports) + "1.1.2"} {
		if _, err := cluster.ParseExports([]byte(bad)); !errors.Is(err, cluster.ErrBadExports) {
			t.Errorf("ParseExports(%.40q) = %v, want ErrBadExports", bad, err)
		}
	}
}

// FuzzParseExports: an exports list from the network either parses into
// at most MaxExports sorted, distinct addresses of nodes that are not
// harbors, which format back to a list that parses the same, or fails
// with ErrBadExports; it never panics.
func FuzzParseExports(f *testing.F) {
	for _, s := range []string{"", "1.1.1", "2.7.3,2.7.1", "4095.254.4095", "1.255.1", "1.1.1,,", "+1.1.1", "1.1.1\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		addrs, err := cluster.ParseExports(b)
		if err != nil {
			if !errors.Is(err, cluster.ErrBadExports) {
				t.Fatalf("error %v does not match ErrBadExports", err)
			}
			return
		}
		if len(addrs) > cluster.MaxExports || !slices.IsSorted(addrs) {
			t.Fatalf("%d addresses, sorted %v", len(addrs), slices.IsSorted(addrs))
		}
		parts := make([]string, len(addrs))
		for i, a := range addrs {
			if a == 0 || a.IsHarbor() || (i > 0 && addrs[i-1] == a) {
				t.Fatalf("bad address %v in %v", a, addrs)
			}
			parts[i] = a.String()
		}
		again, err := cluster.ParseExports([]byte(strings.Join(parts, ",")))
		if err != nil || !slices.Equal(again, addrs) {
			t.Fatalf("round trip: %v, %v, want %v", again, err, addrs)
		}
	})
}
