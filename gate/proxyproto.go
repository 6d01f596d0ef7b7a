package gate

import (
	"net"

	"github.com/pires/go-proxyproto"
)

// proxyListener wraps the TCP listener ln so that a connection from one
// of Limits.TrustedProxies may start with a PROXY protocol header (v1 or
// v2, as HAProxy, nginx's stream module and cloud load balancers send
// it): its RemoteAddr is then the client's, which the per-source limits
// count. A trusted proxy's connection without a header (a health check)
// keeps the proxy's address, exempt as trusted. A connection from any
// other address is not looked at: a PROXY header from it is just bytes
// the protocol refuses. With no trusted proxies, ln is returned as is.
func (g *Gateway) proxyListener(ln net.Listener) net.Listener {
	if len(g.lim.TrustedProxies) == 0 {
		return ln
	}
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: g.lim.HandshakeTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if g.limits.trusted(o.Upstream.String()) {
				return proxyproto.USE, nil
			}
			return proxyproto.SKIP, nil
		},
	}
}
