// Package origin decides which web pages may open a WebSocket to a
// gateway, by the Origin header that browsers send with the upgrade
// request. It is a leaf package so that the cluster file's validation
// (package config) can check patterns without linking the gateway.
//
// A request without an Origin header is not from a browser's page (a game
// client, a bot, curl): it is allowed, since only a browser can be made to
// connect on a user's behalf by somebody else's page (cross-site WebSocket
// hijacking), and only a browser sends the header. A request whose Origin
// names the same host as the request's Host header (ports aside) is
// allowed: that is the page the gateway (or its proxy) serves itself, as
// `guild demo` does. Every other Origin must match one of the patterns:
//
//	https://game.example.com   that scheme and host, any port
//	https://game.example.com:8443  that scheme, host and port
//	game.example.com           that host, http or https, any port
//	*.example.com              any subdomain of example.com (not example.com itself)
//	*                          any origin at all: only for a gateway whose
//	                           sessions carry no ambient authority (tokens
//	                           in the handshake, not cookies)
//
// Hosts compare case-insensitively. The Origin "null" (a file:// page, a
// sandboxed frame) matches only "*".
package origin

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrRefused is matched (errors.Is) by the error Allow returns for an
// Origin that is not allowed.
var ErrRefused = errors.New("origin: not allowed")

// Policy is a parsed list of allowed origins. The zero Policy (and nil)
// allows requests without an Origin and those from the request's own
// host. A Policy is safe for concurrent use.
type Policy struct {
	any      bool
	patterns []pattern
}

// pattern is one parsed entry: scheme "" matches http and https; host
// with wildcard is a suffix (".example.com"); port "" matches any.
type pattern struct {
	scheme   string
	host     string
	wildcard bool
	port     string
}

// Parse parses patterns (see the package doc) into a Policy. An error
// names the first bad pattern and says what is wrong with it.
func Parse(patterns []string) (*Policy, error) {
	p := &Policy{}
	for _, s := range patterns {
		if s == "*" {
			p.any = true
			continue
		}
		pt, err := parse(s)
		if err != nil {
			return nil, err
		}
		p.patterns = append(p.patterns, pt)
	}
	return p, nil
}

// Check reports whether pattern is a valid pattern, with a clear error if
// not.
func Check(pattern string) error {
	_, err := Parse([]string{pattern})
	return err
}

func parse(s string) (pattern, error) {
	bad := func(why string) (pattern, error) {
		return pattern{}, fmt.Errorf("origin pattern %q: %s", s, why)
	}
	if strings.TrimSpace(s) != s || s == "" {
		return bad("empty, or white space around it")
	}
	var pt pattern
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		pt.scheme = strings.ToLower(s[:i])
		if pt.scheme != "http" && pt.scheme != "https" {
			return bad("the scheme must be http or https (or none, for both)")
		}
		rest = s[i+3:]
	}
	if strings.ContainsAny(rest, "/?#@") {
		return bad("an origin is scheme://host[:port], with no path, query or user")
	}
	u, err := url.Parse("x://" + rest)
	if err != nil || u.Hostname() == "" {
		return bad("not a host[:port]")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" && strings.HasSuffix(rest, ":") {
		return bad("empty port")
	}
	if strings.HasPrefix(host, "*.") {
		pt.wildcard = true
		host = host[1:] // ".example.com"
		if len(host) < 2 {
			return bad("nothing after *.")
		}
	}
	if strings.Contains(host, "*") {
		return bad(`"*" may only start the host, as in *.example.com, or be the whole pattern`)
	}
	pt.host, pt.port = host, port
	return pt, nil
}

// Allow returns nil if a WebSocket upgrade with this Origin header value
// (origin, "" when absent) to this Host header value (host) is allowed,
// and an error matching ErrRefused that says why not otherwise.
func (p *Policy) Allow(origin, host string) error {
	if origin == "" {
		return nil
	}
	if p != nil && p.any {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("%w: Origin %q is not a web page's scheme://host", ErrRefused, trim(origin))
	}
	oh := strings.ToLower(u.Hostname())
	if oh == strings.ToLower(hostname(host)) {
		return nil
	}
	if p != nil {
		oport := u.Port()
		if oport == "" {
			oport = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		for _, pt := range p.patterns {
			if pt.matches(u.Scheme, oh, oport) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: Origin %q is neither this host (%s) nor an allowed origin", ErrRefused, trim(origin), trim(hostname(host)))
}

func (pt pattern) matches(scheme, host, port string) bool {
	if pt.scheme != "" && pt.scheme != scheme {
		return false
	}
	if pt.port != "" && pt.port != port {
		return false
	}
	if pt.wildcard {
		return strings.HasSuffix(host, pt.host) && len(host) > len(pt.host)
	}
	return host == pt.host
}

// hostname returns a Host header's host without its port.
func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// trim bounds a client's string quoted in an error.
func trim(s string) string {
	const max = 100
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
