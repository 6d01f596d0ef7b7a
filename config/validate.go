package config

import (
	"crypto/x509"
	"fmt"
	"github.com/guildkit/guild/transport/tcp"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/origin"
	"github.com/guildkit/guild/gate/tokenauth"
)

// fill sets the names and the defaults.
func (c *Config) fill() {
	for name, n := range c.Nodes {
		n.Name = name
		if n.Listen == "" {
			n.Listen = DefaultListen
		}
		if n.JoinWait == 0 {
			n.JoinWait = DefaultJoinWait
		}
		if g := n.Gateway; g != nil && g.WSPath == "" {
			g.WSPath = DefaultWSPath
		}
		if g := n.Gateway; g != nil && g.MQTTWSPath == "" {
			g.MQTTWSPath = DefaultMQTTWSPath
		}
	}
}

// validator collects the problems of a Config.
type validator struct{ errs []error }

func (v *validator) fail(path, format string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
}

// validate returns every problem with c. modules are the registered
// module names; nil skips checking against them.
func (c *Config) validate(modules []string) []error {
	v := &validator{}
	registered := func(name string) bool { return modules == nil || slices.Contains(modules, name) }
	has := "none"
	if len(modules) > 0 {
		has = strings.Join(modules, ", ")
	}

	if c.Cluster.ID < 0 || c.Cluster.ID > actor.MaxCluster {
		v.fail("cluster.id", "%d is outside 0..%d", c.Cluster.ID, actor.MaxCluster)
	}
	e := c.Cluster.Etcd
	for i, ep := range e.Endpoints {
		if strings.TrimSpace(ep) == "" {
			v.fail(fmt.Sprintf("cluster.etcd.endpoints[%d]", i), "empty endpoint")
		}
	}
	if e.TTL < 0 || (e.TTL > 0 && e.TTL < time.Second) {
		v.fail("cluster.etcd.ttl", "%v is below the minimum 1s", e.TTL)
	}
	if e.DialTimeout < 0 {
		v.fail("cluster.etcd.dial_timeout", "%v is negative", e.DialTimeout)
	}
	if err := c.Cluster.Transport.check(); err != nil {
		v.fail("cluster.transport", "%v", err)
	}
	if t := c.Cluster.Transport.TLS; t != nil {
		if k := c.Cluster.Transport.Kind; k != "" && k != TransportTCP {
			v.fail("cluster.transport.tls", "is for kind tcp; a %s broker's TLS goes in its url", k)
		}
		t.validate(v, "cluster.transport.tls", true)
	}
	if e.Prefix != "" && (!strings.HasPrefix(e.Prefix, "/") || strings.Trim(e.Prefix, "/") == "") {
		v.fail("cluster.etcd.prefix", "%q must start with / and name something", e.Prefix)
	}
	if h := c.Cluster.Harbors; h != nil {
		for i, ep := range h.Endpoints {
			if strings.TrimSpace(ep) == "" {
				v.fail(fmt.Sprintf("cluster.harbors.endpoints[%d]", i), "empty endpoint")
			}
		}
		if h.Prefix != "" && (!strings.HasPrefix(h.Prefix, "/") || strings.Trim(h.Prefix, "/") == "") {
			v.fail("cluster.harbors.prefix", "%q must start with / and name something", h.Prefix)
		}
		if h.Prefix != "" && h.Prefix == e.Prefix && slices.Equal(h.Endpoints, e.Endpoints) {
			v.fail("cluster.harbors", "is cluster.etcd itself: the harbors meet in an etcd (or a prefix) of their own")
		}
	}
	if len(c.Nodes) == 0 {
		v.fail("nodes", "no nodes")
	}
	v.telemetry(c)
	v.admin(c)
	v.tables("tables", &c.Tables)

	var (
		byAddr    = make(map[actor.Addr]string) // address -> node
		byEnvName = make(map[string]string)     // GUILD_ spelling -> node
		masters   []string
		natsNodes []string
		hostType  = make(map[string]int)    // module -> node type
		hostNode  = make(map[string]string) // module -> first node hosting it
		listeners []listener
	)
	names := c.NodeNames()
	for _, name := range names {
		n := c.Nodes[name]
		p := "nodes." + name
		if !validName(name) {
			v.fail(p, "a node name is letters, digits, '-' and '_'")
		}
		if other, dup := byEnvName[EnvName(name)]; dup {
			v.fail(p, "the name is nodes.%s's in environment variables (GUILD_NODES_%s_...)", other, EnvName(name))
		} else {
			byEnvName[EnvName(name)] = name
		}
		var addr actor.Addr
		switch a, err := actor.ParseAddr(n.Addr); {
		case n.Addr == "":
			v.fail(p+".addr", "required: the node's logical address cluster.type.index")
		case err != nil:
			v.fail(p+".addr", "%q is not cluster.type.index", n.Addr)
		case a == 0:
			v.fail(p+".addr", "0.0.0 is not a node address")
		default:
			addr = a
			if other, dup := byAddr[a]; dup {
				v.fail(p+".addr", "%s is also the address of nodes.%s", a, other)
			} else {
				byAddr[a] = name
			}
			if c.Cluster.ID != 0 && a.Cluster() != c.Cluster.ID {
				v.fail(p+".addr", "%s is not in cluster %d (cluster.id)", a, c.Cluster.ID)
			}
			if a.IsHarbor() && (c.Cluster.Harbors == nil || len(c.Cluster.Harbors.Endpoints) == 0) {
				v.fail(p+".addr", "%s is a harbor (type %d): it needs cluster.harbors.endpoints, the harbors' etcd", a, actor.HarborType)
			}
		}
		listeners = v.hostPort(listeners, p+".listen", n.Listen, true)
		if n.Master != "" {
			masters = append(masters, name)
			if len(masters) == 2 {
				v.fail(p+".master", "nodes.%s is the master already: a cluster has at most one", masters[0])
			}
			listeners = v.hostPort(listeners, p+".master", n.Master, true)
		} else if n.Data != "" {
			v.fail(p+".data", "the embedded etcd's directory needs master")
		}
		if n.NATS != "" {
			natsNodes = append(natsNodes, name)
			if len(natsNodes) == 2 {
				v.fail(p+".nats", "nodes.%s embeds NATS already: a cluster has at most one", natsNodes[0])
			}
			if c.Cluster.Transport.Kind != TransportNATS || c.Cluster.Transport.URL != "" {
				v.fail(p+".nats", "an embedded NATS serves cluster.transport.kind nats without a url")
			}
			listeners = v.hostPort(listeners, p+".nats", n.NATS, true)
			if _, port, err := net.SplitHostPort(n.NATS); err == nil && port == "0" && len(c.Nodes) > 1 {
				v.fail(p+".nats", "port 0 would hide the server from the other nodes: give a port")
			}
		}
		if t := n.Telemetry; t != nil {
			if t.Metrics == "" {
				v.fail(p+".telemetry.metrics", "required in a node's telemetry section: the host:port of its metrics listener")
			}
			listeners = v.hostPort(listeners, p+".telemetry.metrics", t.Metrics, false)
		}
		if a := n.Admin; a != nil {
			if a.Listen == "" {
				v.fail(p+".admin.listen", "required in a node's admin section: the host:port of its dashboard")
			}
			listeners = v.hostPort(listeners, p+".admin.listen", a.Listen, false)
		}
		if n.Tables != nil {
			v.tables(p+".tables", n.Tables)
			if c.TablesOf(name).Dir == "" {
				v.fail(p+".tables.dir", "required: the directory of the node's table files (or tables.dir for every node)")
			}
		}
		if n.JoinWait < 0 {
			v.fail(p+".join_wait", "%v is negative", n.JoinWait)
		}
		seen := make(map[string]bool)
		for i, m := range n.Modules {
			mp := fmt.Sprintf("%s.modules[%d]", p, i)
			switch {
			case m == "":
				v.fail(mp, "empty module name")
				continue
			case !registered(m):
				v.fail(mp, "no module %q in the game's registry (it has %s)", m, has)
			case seen[m]:
				v.fail(mp, "module %q is listed twice", m)
				continue
			}
			seen[m] = true
			if addr == 0 {
				continue
			}
			if t, ok := hostType[m]; ok && t != addr.Type() {
				v.fail(mp, "module %q is hosted by node type %d here but by type %d on nodes.%s: a module's nodes must be of one type", m, addr.Type(), t, hostNode[m])
			} else if !ok {
				hostType[m], hostNode[m] = addr.Type(), name
			}
		}
	}
	if len(e.Endpoints) == 0 && len(masters) == 0 && len(c.Nodes) > 0 {
		v.fail("cluster.etcd.endpoints", "the nodes have no etcd: give its endpoints, or make one node the master")
	}
	v.etcdSecurity(e, masters)
	for _, name := range names {
		if g := c.Nodes[name].Gateway; g != nil {
			listeners = v.gateway("nodes."+name+".gateway", g, listeners, hostType, registered)
		}
		if st := c.Nodes[name].Streams; st != nil {
			listeners = v.streams("nodes."+name+".streams", st, listeners, hostType, registered)
		}
	}
	v.report(c.Report)
	for _, k := range slices.Sorted(maps.Keys(c.Modules)) {
		if !registered(k) {
			v.fail("modules."+k, "no module %q in the game's registry (it has %s)", k, has)
		}
	}
	v.clashes(listeners)
	return v.errs
}

// streams checks a node's streams section.
func (v *validator) streams(p string, st *Streams, ls []listener, hostType map[string]int, registered func(string) bool) []listener {
	ls = v.hostPort(ls, p+".listen", st.Listen, false)
	if st.Advertise != "" {
		if _, _, err := net.SplitHostPort(st.Advertise); err != nil {
			v.fail(p+".advertise", "%q is not host:port", st.Advertise)
		}
	}
	if st.MaxStreamsPerPeer < 0 {
		v.fail(p+".max_streams_per_peer", "%d is negative", st.MaxStreamsPerPeer)
	}
	if st.Window != 0 && (st.Window < 256<<10 || st.Window > 1<<30) {
		v.fail(p+".window", "%d is not within 262144 (256 KiB) and 1073741824 (1 GiB)", st.Window)
	}
	if st.MaxRate < 0 {
		v.fail(p+".max_rate", "%v is negative", st.MaxRate)
	}
	g := st.Gateway
	if g == nil {
		return ls
	}
	p += ".gateway"
	ls = v.hostPort(ls, p+".listen", g.Listen, true)
	switch {
	case g.Module != "" && g.NodeType != 0:
		v.fail(p, "module and node_type exclude each other: give one")
	case g.Module == "" && g.NodeType == 0:
		v.fail(p, "no backends: give module (the backends' module) or node_type")
	case g.Module != "" && !registered(g.Module):
		v.fail(p+".module", "no module %q in the game's registry", g.Module)
	case g.Module != "":
		if _, ok := hostType[g.Module]; !ok {
			v.fail(p+".module", "no node hosts module %q", g.Module)
		}
	case g.NodeType < 0 || g.NodeType > actor.MaxType:
		v.fail(p+".node_type", "%d is outside 1..%d", g.NodeType, actor.MaxType)
	}
	switch g.Pick {
	case "", "random", "round-robin", "consistent-hash":
	default:
		v.fail(p+".pick", "%q is not random, round-robin or consistent-hash", g.Pick)
	}
	if len(g.Service) > 64 {
		v.fail(p+".service", "%d bytes, at most 64", len(g.Service))
	}
	if g.MaxConns < 0 {
		v.fail(p+".max_conns", "%d is negative", g.MaxConns)
	}
	if g.IdleTimeout < 0 {
		v.fail(p+".idle_timeout", "%v is negative", g.IdleTimeout)
	}
	return ls
}

// etcdSecurity checks cluster.etcd's TLS and credentials, without
// reading their files (see CheckFiles). masters are the nodes that run an
// embedded etcd, which serves plain http without users.
func (v *validator) etcdSecurity(e Etcd, masters []string) {
	if t := e.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.fail("cluster.etcd.tls", "cert_file and key_file go together: give both (a client certificate, for an etcd that requires one) or neither")
		}
		for i, ep := range e.Endpoints {
			if scheme, _, ok := strings.Cut(ep, "://"); ok && !strings.EqualFold(scheme, "https") {
				v.fail(fmt.Sprintf("cluster.etcd.endpoints[%d]", i), "%q is not https, but cluster.etcd.tls is set: write https://", ep)
			}
		}
	}
	var first string
	for i, ep := range e.Endpoints {
		scheme, _, ok := strings.Cut(ep, "://")
		if !ok {
			continue
		}
		if first == "" {
			first = strings.ToLower(scheme)
		} else if !strings.EqualFold(scheme, first) {
			v.fail(fmt.Sprintf("cluster.etcd.endpoints[%d]", i), "%q is not %s like endpoints[0]: etcd's client reaches every endpoint with the first one's scheme", ep, first)
		}
	}
	switch {
	case e.Password != "" && e.PasswordFile != "":
		v.fail("cluster.etcd.password_file", "%s is set too: give one of them", EtcdPasswordEnv)
	case e.Password != "" && e.Username == "":
		v.fail(EtcdPasswordEnv, "a password without a user: set cluster.etcd.username")
	case e.PasswordFile != "" && e.Username == "":
		v.fail("cluster.etcd.password_file", "a password without a user: set cluster.etcd.username")
	case e.Username != "" && e.Password == "" && e.PasswordFile == "":
		v.fail("cluster.etcd.username", "no password: give password_file or the %s variable (a user named by the client certificate needs neither username nor password)", EtcdPasswordEnv)
	}
	if len(masters) > 0 && (e.TLS != nil || e.Username != "") {
		v.fail("nodes."+masters[0]+".master", "the embedded etcd serves plain http without users, but cluster.etcd sets tls or username: use an external etcd (cluster.etcd.endpoints) for those")
	}
}

// telemetry checks the cluster's telemetry section. Its metrics address
// is each node's (one per machine), so it does not clash with the nodes'
// listeners; a node's own telemetry.metrics does.
func (v *validator) telemetry(c *Config) {
	t := c.Telemetry
	v.hostPort(nil, "telemetry.metrics", t.Metrics, false)
	v.hostPort(nil, "telemetry.traces.endpoint", t.Traces.Endpoint, false)
	if r := t.Traces.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		v.fail("telemetry.traces.sample_ratio", "%v is not between 0 and 1", *r)
	}
	switch {
	case t.Token != "" && t.TokenFile != "":
		v.fail("telemetry", "token and token_file exclude each other: give one")
	case t.Token != "" && len(t.Token) < tokenauth.MinSecret:
		v.fail("telemetry.token", "%d bytes, fewer than %d (openssl rand -hex 32 makes a good one)", len(t.Token), tokenauth.MinSecret)
	case t.Token != "" && strings.TrimSpace(t.Token) != t.Token:
		v.fail("telemetry.token", "white space around the token")
	}
	if (t.Token != "" || t.TokenFile != "") && t.Metrics == "" {
		some := false
		for _, n := range c.Nodes {
			some = some || n.Telemetry != nil && n.Telemetry.Metrics != ""
		}
		if !some {
			v.fail("telemetry", "a token guards the metrics listeners, but no node has one: set telemetry.metrics")
		}
	}
}

// admin checks the cluster's admin section. Like telemetry.metrics, its
// listen address is each node's, so it does not clash with the nodes'
// listeners; a node's own admin.listen does.
func (v *validator) admin(c *Config) {
	a := c.Admin
	v.hostPort(nil, "admin.listen", a.Listen, false)
	switch {
	case a.Token != "" && a.TokenFile != "":
		v.fail("admin", "token and token_file exclude each other: give one")
	case a.Token != "" && len(a.Token) < tokenauth.MinSecret:
		v.fail("admin.token", "%d bytes, fewer than %d (openssl rand -hex 32 makes a good one)", len(a.Token), tokenauth.MinSecret)
	case a.Token != "" && strings.TrimSpace(a.Token) != a.Token:
		v.fail("admin.token", "white space around the token")
	}
	if (a.Token != "" || a.TokenFile != "") && !c.AdminOn() {
		v.fail("admin", "a token guards the admin dashboards, but no node serves one: set admin.listen")
	}
}

// tables checks a tables section.
func (v *validator) tables(p string, t *Tables) {
	if t.Watch < 0 || (t.Watch > 0 && t.Watch < 100*time.Millisecond) {
		v.fail(p+".watch", "%v: 0 (no watching) or at least 100ms", t.Watch)
	}
	if p == "tables" && t.Watch != 0 && t.Dir == "" {
		v.fail("tables.dir", "required with tables.watch: the directory of the table files")
	}
}

// validName reports whether a node name is letters, digits, '-' and '_'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// gateway checks a gateway's section.
func (v *validator) gateway(p string, g *Gateway, ls []listener, hostType map[string]int, registered func(string) bool) []listener {
	if g.TCP == "" && g.WS == "" && g.KCP == "" && g.MQTT == "" && g.MQTTWS == "" {
		v.fail(p, "no listener: give at least one of tcp, ws, kcp, mqtt and mqtt_ws")
	}
	ls = v.hostPort(ls, p+".tcp", g.TCP, false)
	ls = v.hostPort(ls, p+".ws", g.WS, false)
	ls = v.hostPort(ls, p+".kcp", g.KCP, false)
	switch {
	case g.KCPKey != "" && g.KCPKeyFile != "":
		v.fail(p, "kcp_key and kcp_key_file exclude each other: give one")
	case g.KCPKey != "" && len(g.KCPKey) < tokenauth.MinSecret:
		v.fail(p+".kcp_key", "%d bytes, fewer than %d (openssl rand -hex 32 makes a good one)", len(g.KCPKey), tokenauth.MinSecret)
	case g.KCPKey != "" && strings.TrimSpace(g.KCPKey) != g.KCPKey:
		v.fail(p+".kcp_key", "white space around the key")
	}
	if (g.KCPKey != "" || g.KCPKeyFile != "") && g.KCP == "" {
		v.fail(p, "a KCP key, but no kcp listener: set kcp")
	}
	switch {
	case g.ResumeKey != "" && g.ResumeKeyFile != "":
		v.fail(p, "resume_key and resume_key_file exclude each other: give one")
	case g.ResumeKey != "" && len(g.ResumeKey) < tokenauth.MinSecret:
		v.fail(p+".resume_key", "%d bytes, fewer than %d (openssl rand -hex 32 makes a good one)", len(g.ResumeKey), tokenauth.MinSecret)
	case g.ResumeKey != "" && strings.TrimSpace(g.ResumeKey) != g.ResumeKey:
		v.fail(p+".resume_key", "white space around the key")
	}
	if (g.ResumeKey != "" || g.ResumeKeyFile != "") && g.Limits.ResumeWindow <= 0 {
		v.fail(p, "a resume key, but no limits.resume_window: sessions are not kept for resumption")
	}
	ls = v.hostPort(ls, p+".mqtt", g.MQTT, false)
	ls = v.hostPort(ls, p+".mqtt_ws", g.MQTTWS, false)
	if !strings.HasPrefix(g.WSPath, "/") {
		v.fail(p+".ws_path", "%q does not start with /", g.WSPath)
	}
	g.TLS.validate(v, p+".tls", false)
	if !strings.HasPrefix(g.MQTTWSPath, "/") {
		v.fail(p+".mqtt_ws_path", "%q does not start with /", g.MQTTWSPath)
	}
	if g.Auth != nil {
		v.auth(p+".auth", g.Auth)
	}
	for i, o := range g.WSOrigins {
		if err := origin.Check(o); err != nil {
			v.fail(fmt.Sprintf("%s.ws_origins[%d]", p, i), "%v", err)
		}
	}
	for i, r := range g.Public {
		if !strings.Contains(r, ".") {
			v.fail(fmt.Sprintf("%s.public[%d]", p, i), "%q is not a route service.Method", r)
		}
	}
	for _, svc := range slices.Sorted(maps.Keys(g.Routes)) {
		r, rp := g.Routes[svc], p+".routes."+svc
		if svc == "" || strings.Contains(svc, ".") {
			v.fail(rp, "a route's key is a service name without '.'")
		}
		switch {
		case r.Module == "" && r.Name == "":
			v.fail(rp, "give module (the nodes hosting it) or name (a global name)")
		case r.Module != "" && r.Name != "":
			v.fail(rp, "module and name exclude each other")
		case r.Name != "" && (r.ByUser || r.RPC != ""):
			v.fail(rp, "by_user and rpc go with module, not name")
		case r.ByUser && r.RPC != "":
			v.fail(rp+".by_user", "by_user does not go with rpc: an rpc route picks nodes in turn")
		case r.Module != "":
			if _, ok := hostType[r.Module]; !ok {
				if registered(r.Module) {
					v.fail(rp+".module", "no node hosts module %q", r.Module)
				} else {
					v.fail(rp+".module", "no module %q in the game's registry, and no node hosts it", r.Module)
				}
			}
		}
	}
	l := g.Limits
	if _, err := l.Proxies(); err != nil {
		v.fail(p+".limits.trusted_proxies", "%v", err)
	}
	for _, f := range []struct {
		key string
		neg bool
	}{
		{"max_frame", l.MaxFrame < 0}, {"handshake_timeout", l.HandshakeTimeout < 0},
		{"heartbeat", l.Heartbeat < 0}, {"request_timeout", l.RequestTimeout < 0},
		{"rate", l.Rate < 0}, {"burst", l.Burst < 0}, {"write_queue", l.WriteQueue < 0},
		{"max_conns", l.MaxConns < 0}, {"max_header_bytes", l.MaxHeaderBytes < 0},
		{"http_idle_timeout", l.HTTPIdleTimeout < 0}, {"conn_burst", l.ConnBurst < 0},
		{"source_burst", l.SourceBurst < 0},
		{"write_queue_bytes", l.WriteQueueBytes < 0}, {"slow_client_after", l.SlowClientAfter < 0}, {"send_buffer", l.SendBuffer < -1},
		{"group_rate", l.GroupRate < 0}, {"group_burst", l.GroupBurst < 0},
		{"resume_window", l.ResumeWindow < 0}, {"resume_buffer", l.ResumeBuffer < 0},
	} {
		if f.neg {
			v.fail(p+".limits."+f.key, "negative")
		}
	}
	return ls
}

// auth checks a gateway's auth section, without reading its files (see
// CheckFiles).
func (v *validator) auth(p string, a *Auth) {
	var set []string
	for _, f := range []struct{ key, val string }{
		{"tokens_file", a.TokensFile}, {"jwt_secret", a.JWTSecret}, {"jwt_secret_file", a.JWTSecretFile},
	} {
		if f.val != "" {
			set = append(set, f.key)
		}
	}
	switch {
	case len(set) == 0:
		v.fail(p, "give one of tokens_file, jwt_secret and jwt_secret_file")
	case len(set) > 1:
		v.fail(p, "%s exclude each other: give one", strings.Join(set, " and "))
	case a.JWTSecret != "" && len(a.JWTSecret) < tokenauth.MinSecret:
		v.fail(p+".jwt_secret", "%d bytes, fewer than %d (openssl rand -hex 32 makes a good one)", len(a.JWTSecret), tokenauth.MinSecret)
	}
}

// report checks the report section with the report package's rules,
// without reading its files (see CheckFiles).
func (v *validator) report(r Report) {
	if w := r.Webhook; w != nil {
		if err := w.WebhookConfig().Validate(); err != nil {
			v.fail("report.webhook", "%s", fieldNames(err))
		}
	}
	if m := r.SMTP; m != nil {
		c := m.SMTPConfig()
		if m.Password != "" && m.PasswordFile != "" {
			v.fail("report.smtp", "password and password_file exclude each other: give one")
		}
		if m.PasswordFile != "" {
			c.Password = "from password_file"
			if m.User == "" {
				v.fail("report.smtp.password_file", "a password without a user")
			}
		}
		if err := c.Validate(); err != nil {
			v.fail("report.smtp", "%s", fieldNames(err))
		}
	}
}

// fieldNames rewrites a report package error in the cluster file's terms:
// "report: SMTPConfig.To[1] ..." becomes "to[1] ...".
func fieldNames(err error) string {
	s := strings.TrimPrefix(err.Error(), "report: ")
	for _, r := range []struct{ from, to string }{
		{"WebhookConfig.URL", "url"}, {"WebhookConfig.Headers", "headers"}, {"WebhookConfig.Queue", "queue"},
		{"WebhookConfig.Batch", "batch"}, {"WebhookConfig.Interval", "interval"}, {"WebhookConfig.Timeout", "timeout"},
		{"WebhookConfig.Backoff", "backoff"}, {"SMTPConfig.Addr", "addr"}, {"SMTPConfig.From", "from"},
		{"SMTPConfig.To", "to"}, {"SMTPConfig.User", "user"}, {"SMTPConfig.Password", "password"},
		{"SMTPConfig.Queue", "queue"}, {"SMTPConfig.Batch", "batch"}, {"SMTPConfig.Interval", "interval"},
		{"SMTPConfig.Timeout", "timeout"}, {"SMTPConfig.Backoff", "backoff"}, {"NoStartTLS", "starttls: false"},
	} {
		s = strings.ReplaceAll(s, r.from, r.to)
	}
	return s
}

// CheckFiles reads the files that the settings of the node named name
// point to (its tables directory, which must exist; its gateway's auth,
// TLS, kcp_key_file and resume_key_file files,
// telemetry.token_file when it serves metrics, and the files of
// cluster.etcd, cluster.transport.tls and the report section, which every
// node reads) and returns every problem with them, each naming its field,
// all matching ErrInvalid. Load does not
// read them: every machine loads the whole cluster file, and a node's
// files are on its own machine. app.Start checks the node it starts.
func (c *Config) CheckFiles(name string) error {
	n, ok := c.Nodes[name]
	if !ok {
		return nil
	}
	v := &validator{}
	if f := c.Telemetry.TokenFile; f != "" && c.MetricsListen(name) != "" {
		if _, err := tokenauth.ReadSecret(f); err != nil {
			v.fail("telemetry.token_file", "%v", err)
		}
	}
	if f := c.Admin.TokenFile; f != "" && c.AdminListen(name) != "" {
		if _, err := tokenauth.ReadSecret(f); err != nil {
			v.fail("admin.token_file", "%v", err)
		}
	}
	if dir := c.TablesOf(name).Dir; dir != "" {
		switch fi, err := os.Stat(dir); {
		case err != nil:
			v.fail(c.tablesKey(name), "%v", err)
		case !fi.IsDir():
			v.fail(c.tablesKey(name), "%s is not a directory", dir)
		}
	}
	e := c.Cluster.Etcd
	if e.PasswordFile != "" {
		if _, err := ReadSecretFile(e.PasswordFile); err != nil {
			v.fail("cluster.etcd.password_file", "%v", err)
		}
	}
	if e.TLS != nil {
		_, errs := e.TLS.config()
		v.errs = append(v.errs, errs...)
	}
	if m := c.Report.SMTP; m != nil {
		if m.PasswordFile != "" {
			if _, err := ReadSecretFile(m.PasswordFile); err != nil {
				v.fail("report.smtp.password_file", "%v", err)
			}
		}
		if m.CAFile != "" {
			if _, err := ReadCAFile(m.CAFile); err != nil {
				v.fail("report.smtp.ca_file", "%v", err)
			}
		}
	}
	if t := c.Cluster.Transport.TLS; t != nil {
		if _, err := t.MeshConfig(); err != nil {
			v.fail("cluster.transport.tls", "%v", err)
		}
	}
	if n.Gateway != nil && n.Gateway.TLS != nil {
		if _, err := n.Gateway.TLS.ServerConfig(); err != nil {
			v.fail("nodes."+name+".gateway.tls", "%v", err)
		}
	}
	if n.Gateway != nil && n.Gateway.KCPKeyFile != "" {
		if _, err := tokenauth.ReadSecret(n.Gateway.KCPKeyFile); err != nil {
			v.fail("nodes."+name+".gateway.kcp_key_file", "%v", err)
		}
	}
	if n.Gateway != nil && n.Gateway.ResumeKeyFile != "" {
		if _, err := tokenauth.ReadSecret(n.Gateway.ResumeKeyFile); err != nil {
			v.fail("nodes."+name+".gateway.resume_key_file", "%v", err)
		}
	}
	if n.Gateway == nil || n.Gateway.Auth == nil {
		return v.result()
	}
	p, a := "nodes."+name+".gateway.auth", n.Gateway.Auth
	switch {
	case a.TokensFile != "":
		t, err := tokenauth.ReadFile(a.TokensFile)
		switch {
		case err != nil:
			v.fail(p+".tokens_file", "%v", err)
		case t.Len() == 0:
			v.fail(p+".tokens_file", "%s has no token", a.TokensFile)
		}
	case a.JWTSecretFile != "":
		if _, err := tokenauth.ReadSecret(a.JWTSecretFile); err != nil {
			v.fail(p+".jwt_secret_file", "%v", err)
		}
	}
	return v.result()
}

// result returns the problems found as one error matching ErrInvalid, or
// nil.
func (v *validator) result() error {
	if len(v.errs) == 0 {
		return nil
	}
	return invalid("", v.errs...)
}

// ReadSecretFile reads a secret from a file (report.smtp.password_file,
// cluster.etcd.password_file): its contents without the white space
// around them, which must leave something.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ReadCAFile reads a PEM file of certificates (report.smtp.ca_file,
// cluster.etcd.tls.ca_file) into a pool.
func ReadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// listener is one host:port a node listens on.
type listener struct{ path, hostport string }

// hostPort checks that s (at path) is host:port and notes it as a
// listener. An empty s is checked only when required.
func (v *validator) hostPort(ls []listener, path, s string, required bool) []listener {
	if s == "" {
		if required {
			v.fail(path, "required: host:port")
		}
		return ls
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.fail(path, "%q is not host:port", s)
		return ls
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		v.fail(path, "%q: port %q is not 0..65535", s, port)
		return ls
	}
	if n == 0 {
		return ls // a free port: never clashes
	}
	return append(ls, listener{path, net.JoinHostPort(host, strconv.Itoa(n))})
}

// clashes reports each host:port used twice.
func (v *validator) clashes(ls []listener) {
	first := make(map[string]string)
	for _, l := range ls {
		if other, dup := first[l.hostport]; dup {
			v.fail(l.path, "%s is also %s", l.hostport, other)
			continue
		}
		first[l.hostport] = l.path
	}
}

// check validates the transport settings with transport/tcp's rules.
func (t Transport) check() error {
	switch t.Kind {
	case "", TransportTCP:
		if t.URL != "" || t.Prefix != "" {
			return fmt.Errorf("url and prefix are for a broker (kind nats, amqp or redis), not the tcp mesh")
		}
	case TransportNATS:
	case TransportAMQP, TransportRedis:
		if t.URL == "" {
			return fmt.Errorf("kind %s needs the broker's url", t.Kind)
		}
	default:
		return fmt.Errorf("kind %q is not tcp, nats, amqp or redis", t.Kind)
	}
	if strings.ContainsAny(t.Prefix, " \t\r\n*>{}") {
		return fmt.Errorf("prefix %q may not hold spaces, wildcards or braces", t.Prefix)
	}
	if t.PendingQueue < 0 || t.MaxFrame < 0 {
		return fmt.Errorf("pending_queue and max_frame may not be negative")
	}
	if t.Heartbeat < 0 || t.DeadAfter < 0 || t.DialTimeout < 0 || t.ReconnectMin < 0 || t.ReconnectMax < 0 || t.WatchLinkTimeout < 0 {
		return fmt.Errorf("a duration is negative")
	}
	hb, dead := t.Heartbeat, t.DeadAfter
	if hb == 0 {
		hb = tcp.DefaultHeartbeatInterval
	}
	if dead == 0 {
		dead = tcp.DefaultDeadAfter
	}
	if dead <= hb {
		return fmt.Errorf("dead_after %v must be longer than heartbeat %v", dead, hb)
	}
	lo, hi := t.ReconnectMin, t.ReconnectMax
	if lo == 0 {
		lo = tcp.DefaultReconnectBackoffMin
	}
	if hi == 0 {
		hi = tcp.DefaultReconnectBackoffMax
	}
	if lo > hi {
		return fmt.Errorf("reconnect_min %v is above reconnect_max %v", lo, hi)
	}
	return nil
}
