package origin

import (
	"errors"
	"testing"
)

func TestAllow(t *testing.T) {
	p, err := Parse([]string{"https://game.example.com", "*.cdn.example.org", "http://localhost:3000", "[::1]"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		origin, host string
		ok           bool
	}{
		{"", "gw.example.com", true},                                // not a browser
		{"http://gw.example.com:8080", "gw.example.com:9000", true}, // same host, other port
		{"https://GW.example.com", "gw.example.com", true},
		{"https://game.example.com", "gw.example.com", true},
		{"https://game.example.com:8443", "gw.example.com", true},
		{"http://game.example.com", "gw.example.com", false}, // scheme differs
		{"https://a.cdn.example.org", "gw.example.com", true},
		{"http://a.b.cdn.example.org", "gw.example.com", true},
		{"https://cdn.example.org", "gw.example.com", false}, // *. needs a subdomain
		{"https://evilcdn.example.org", "gw.example.com", false},
		{"http://localhost:3000", "gw.example.com", true},
		{"http://localhost:3001", "gw.example.com", false},
		{"http://[::1]:5000", "gw.example.com", true},
		{"https://evil.com", "gw.example.com", false},
		{"null", "gw.example.com", false},
		{"file://", "gw.example.com", false},
		{"https://evil.com/page", "gw.example.com", false},
	} {
		err := p.Allow(c.origin, c.host)
		if (err == nil) != c.ok {
			t.Errorf("Allow(%q, %q) = %v, want ok=%v", c.origin, c.host, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("Allow(%q): %v is not ErrRefused", c.origin, err)
		}
	}
	var none *Policy
	if none.Allow("https://evil.com", "gw.example.com") == nil || none.Allow("http://gw.example.com", "gw.example.com:80") != nil {
		t.Error("a nil Policy is not same-host only")
	}
	any, _ := Parse([]string{"*"})
	if any.Allow("null", "gw") != nil || any.Allow("https://evil.com", "gw") != nil {
		t.Error(`"*" does not allow every origin`)
	}
}

func TestCheck(t *testing.T) {
	for _, good := range []string{"*", "example.com", "https://example.com", "HTTP://Example.com:8080", "*.example.com", "[::1]:80"} {
		if err := Check(good); err != nil {
			t.Errorf("Check(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", " example.com", "ftp://example.com", "https://example.com/", "example.com/path", "a.*.com", "*", "*.", "example.com:", "https://", "user@example.com"} {
		if bad == "*" {
			continue
		}
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) = nil, want an error", bad)
		}
	}
}

// FuzzAllow feeds Allow hostile Origin and Host headers: it never panics,
// and a refusal always matches ErrRefused.
func FuzzAllow(f *testing.F) {
	for _, s := range []string{"", "null", "https://a.example.com", "http://[::1", "http://%zz", "https://a.example.com:99999", "\x00"} {
		f.Add(s, "gw.example.com:80")
	}
	p, err := Parse([]string{"*.example.com", "https://x.org:8443"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin, host string) {
		if err := p.Allow(origin, host); err != nil && !errors.Is(err, ErrRefused) {
			t.Fatalf("Allow(%q, %q) = %v", origin, host, err)
		}
		_ = Check(origin)
	})
}
