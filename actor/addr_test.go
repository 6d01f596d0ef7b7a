package actor

import (
	"errors"
	"strconv"
	"testing"
)

func TestAddrRoundTrip(t *testing.T) {
	for _, s := range []string{"0.0.0", "1.2.3", "4095.255.4095", "12.0.7"} {
		a, err := ParseAddr(s)
		if err != nil {
			t.Fatalf("ParseAddr(%q): %v", s, err)
		}
		if a.String() != s {
			t.Errorf("ParseAddr(%q).String() = %q", s, a.String())
		}
	}
	a := MustAddr(4095, 255, 4095)
	if uint32(a) != 0xFFFFFFFF || !a.IsHarbor() {
		t.Errorf("max address = %#x, harbor %v", uint32(a), a.IsHarbor())
	}
	a = MustAddr(1, 2, 3)
	if a.Cluster() != 1 || a.Type() != 2 || a.Index() != 3 || a.IsHarbor() {
		t.Errorf("parts of 1.2.3: %d %d %d", a.Cluster(), a.Type(), a.Index())
	}
}

func TestAddrRejectsBadInput(t *testing.T) {
	for _, s := range []string{"", "1.2", "1.2.3.4", "4096.0.0", "0.256.0", "0.0.4096", "a.b.c", "-1.0.0", "+1.0.0", "1..3", " 1.2.3"} {
		if _, err := ParseAddr(s); !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddr(%q) = %v, want ErrBadAddr", s, err)
		}
	}
	if _, err := NewAddr(0, -1, 0); !errors.Is(err, ErrBadAddr) {
		t.Errorf("NewAddr with a negative type: %v", err)
	}
}

func TestAddrText(t *testing.T) {
	var a Addr
	if err := a.UnmarshalText([]byte("3.4.5")); err != nil || a != MustAddr(3, 4, 5) {
		t.Fatalf("UnmarshalText: %v %v", a, err)
	}
	b, _ := a.MarshalText()
	if string(b) != "3.4.5" {
		t.Fatalf("MarshalText = %s", b)
	}
	if err := a.UnmarshalText([]byte("x")); err == nil {
		t.Fatal("UnmarshalText accepted garbage")
	}
}

func FuzzParseAddr(f *testing.F) {
	f.Add("1.2.3")
	f.Add("4095.255.4095")
	f.Add("1.2.")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			return
		}
		b, err := ParseAddr(a.String())
		if err != nil || a != b {
			t.Fatalf("%q parsed to %v, which does not round-trip: %v %v", s, a, b, err)
		}
	})
}

func TestPID(t *testing.T) {
	var zero PID
	if !zero.IsZero() || zero.String() != "nobody" {
		t.Errorf("zero PID: %v %q", zero.IsZero(), zero.String())
	}
	p := PID{Node: MustAddr(1, 2, 3), Serial: 42}
	if p.IsZero() || p.String() != "1.2.3/42" {
		t.Errorf("PID string %q", p.String())
	}
	m := map[PID]int{p: 1}
	if m[PID{Node: MustAddr(1, 2, 3), Serial: 42}] != 1 {
		t.Error("PID is not usable as a map key")
	}
}

// TestPIDText: a PID whose slot was reused reads as slot.generation, and
// ParsePID reads every form String writes, and the plain serial.
func TestPIDText(t *testing.T) {
	a := MustAddr(1, 1, 1)
	for _, c := range []struct {
		serial uint64
		text   string
	}{
		{3, "1.1.1/3"},
		{1<<32 | 3, "1.1.1/3.1"},
		{7<<32 | 12, "1.1.1/12.7"},
		{1 << 32, "1.1.1/0.1"},
		{^uint64(0), "1.1.1/4294967295.4294967295"},
	} {
		p := PID{Node: a, Serial: c.serial}
		if p.String() != c.text {
			t.Errorf("serial %d: %q, want %q", c.serial, p.String(), c.text)
		}
		for _, s := range []string{c.text, "1.1.1/" + strconv.FormatUint(c.serial, 10)} {
			if got, err := ParsePID(s); err != nil || got != p {
				t.Errorf("ParsePID(%q) = %v, %v; want %v", s, got, err, p)
			}
		}
	}
	for _, bad := range []string{"nobody", "", "1.1.1", "1.1.1/0", "1.1.1/3.0", "1.1.1/3.", "1.1.1/.1", "1.1.1/4294967296.1", "1.1.1/1.4294967296", "1.1.1/-1", "x/1", "1.1.1/1.2.3"} {
		if p, err := ParsePID(bad); !errors.Is(err, ErrBadPID) {
			t.Errorf("ParsePID(%q) = %v, %v; want ErrBadPID", bad, p, err)
		}
	}
}
