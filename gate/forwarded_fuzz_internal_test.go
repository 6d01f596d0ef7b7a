package gate

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzForwardedClient: any X-Forwarded-For gives either no client or an
// address that parses, is not a trusted proxy, and was in the header.
func FuzzForwardedClient(f *testing.F) {
	for _, s := range []string{"203.0.113.5", "198.51.100.1, 203.0.113.5", "203.0.113.7, 10.1.2.3", "", " , ,", "2001:db8::1, 10.0.0.1", "[::1]:80", "x, 10.0.0.1", "10.0.0.1, 10.0.0.2"} {
		f.Add(s)
	}
	t := newLimitTable(Limits{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}.withDefaults())
	f.Fuzz(func(tt *testing.T, xff string) {
		r := &http.Request{Header: http.Header{"X-Forwarded-For": {xff}}}
		got := t.forwardedClient(r)
		if got == "" {
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil {
			tt.Fatalf("client %q from %q does not parse: %v", got, xff, err)
		}
		if t.trusted(got) {
			tt.Fatalf("client %q from %q is a trusted proxy", got, xff)
		}
		for _, hop := range strings.Split(xff, ",") {
			if h, ok := addrOf(strings.TrimSpace(hop)); ok && h == a {
				return
			}
		}
		tt.Fatalf("client %q is none of the hops of %q", got, xff)
	})
}
