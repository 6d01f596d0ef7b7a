package prom

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/table"
	"github.com/guildkit/guild/transport"
)

// Every collector here is a pull collector: Collect takes a snapshot
// from its source and turns it into constant metrics. Nothing runs
// between scrapes.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// describe sends every desc of ds.
func describe(ch chan<- *prometheus.Desc, ds ...*prometheus.Desc) {
	for _, d := range ds {
		ch <- d
	}
}

// actorCollector exports actor.Node.Stats.
type actorCollector struct {
	stats                                                 func() actor.Stats
	backlogs                                              func(func(depth int)) // nil: no backlog histogram
	actors, spawned, restarts, panics, dead, msgs, timers *prometheus.Desc
	backlog, kinds                                        *prometheus.Desc
}

// backlogBuckets are the upper bounds of guild_mailbox_backlog: an idle
// actor is in the first, a drowning one past the last.
var backlogBuckets = []float64{0, 1, 10, 100, 1000, 10000}

func newActorCollector(stats func() actor.Stats, backlogs func(func(int))) *actorCollector {
	return &actorCollector{
		stats:    stats,
		backlogs: backlogs,
		actors:   desc("guild_actors", "Actors alive on the node."),
		spawned:  desc("guild_actors_spawned_total", "Actors spawned since the node started."),
		restarts: desc("guild_actor_restarts_total", "Actors restarted by their supervisor."),
		panics:   desc("guild_actor_panics_total", "Panics recovered from actors' Receive, lifecycle messages and Request callbacks."),
		dead:     desc("guild_dead_letters_total", "Messages that could not be delivered."),
		msgs:     desc("guild_messages_handled_total", "Messages actors took from their mailboxes, by lane: user (messages, replies, timers) or system (start, stop, watch...).", "lane"),
		timers:   desc("guild_timers_pending", "Actor timers and request timeouts pending on the node's timing wheel."),
		kinds:    desc("guild_user_messages_total", "User-lane messages actors handled, by kind: send (one-way), request (waiting for a reply), reply (the answer to an actor's Request), timer.", "kind"),
		backlog:  desc("guild_mailbox_backlog", "Live actors by the number of messages waiting in their mailbox (both lanes), read at scrape time by a scan of the node's actors."),
	}
}

func (c *actorCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, c.actors, c.spawned, c.restarts, c.panics, c.dead, c.msgs, c.timers, c.kinds)
	if c.backlogs != nil {
		ch <- c.backlog
	}
}

func (c *actorCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- gauge(c.actors, float64(s.Actors))
	ch <- counter(c.spawned, s.Spawned)
	ch <- counter(c.restarts, s.Restarts)
	ch <- counter(c.panics, s.Panics)
	ch <- counter(c.dead, s.DeadLetters)
	ch <- counter(c.msgs, s.Messages, "user")
	ch <- counter(c.msgs, s.SystemMessages, "system")
	ch <- gauge(c.timers, float64(s.Timers))
	ch <- counter(c.kinds, s.Sends, "send")
	ch <- counter(c.kinds, s.Requests, "request")
	ch <- counter(c.kinds, s.Replies, "reply")
	ch <- counter(c.kinds, s.TimerMessages, "timer")
	if c.backlogs != nil {
		counts := make([]uint64, len(backlogBuckets))
		var n, sum uint64
		c.backlogs(func(d int) {
			n++
			sum += uint64(d)
			for i, b := range backlogBuckets {
				if float64(d) <= b {
					counts[i]++
				}
			}
		})
		buckets := make(map[float64]uint64, len(backlogBuckets))
		for i, b := range backlogBuckets {
			buckets[b] = counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.backlog, n, float64(sum), buckets)
	}
}

// peerCollector exports cluster.Node.PeerStats, by peer address.
type peerCollector struct {
	stats                                              func() []transport.PeerStats
	up, queued, framesOut, bytesOut, framesIn, bytesIn *prometheus.Desc
	reconnects                                         *prometheus.Desc
}

func newPeerCollector(stats func() []transport.PeerStats) *peerCollector {
	const p = "peer"
	return &peerCollector{
		stats:      stats,
		up:         desc("guild_peer_up", "1 while a connection to the peer is established, else 0.", p),
		queued:     desc("guild_peer_queued_envelopes", "Envelopes waiting to be written to the peer.", p),
		framesOut:  desc("guild_peer_sent_frames_total", "Envelopes queued for the peer (heartbeats not counted).", p),
		bytesOut:   desc("guild_peer_sent_bytes_total", "Framed bytes of the envelopes queued for the peer.", p),
		framesIn:   desc("guild_peer_received_frames_total", "Envelopes read from the peer (heartbeats not counted).", p),
		bytesIn:    desc("guild_peer_received_bytes_total", "Framed bytes of the envelopes read from the peer.", p),
		reconnects: desc("guild_peer_reconnects_total", "Connections to the peer established after the first.", p),
	}
}

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, c.up, c.queued, c.framesOut, c.bytesOut, c.framesIn, c.bytesIn, c.reconnects)
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		p := s.Peer.String()
		up := 0.0
		if s.Up {
			up = 1
		}
		ch <- gauge(c.up, up, p)
		ch <- gauge(c.queued, float64(s.Queued), p)
		ch <- counter(c.framesOut, s.FramesOut, p)
		ch <- counter(c.bytesOut, s.BytesOut, p)
		ch <- counter(c.framesIn, s.FramesIn, p)
		ch <- counter(c.bytesIn, s.BytesIn, p)
		ch <- counter(c.reconnects, max(s.Connects, 1)-1, p)
	}
}

// memberCollector exports the size of a membership's view.
type memberCollector struct {
	members func() []cluster.Member
	count   *prometheus.Desc
}

func newMemberCollector(members func() []cluster.Member) *memberCollector {
	return &memberCollector{
		members: members,
		count:   desc("guild_members", "Members in this node's view of the membership, by availability.", "available"),
	}
}

func (c *memberCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.count }

// leaseCollector exports an etcd membership's lease renewals
// (etcd.Membership.Stats).
type leaseCollector struct {
	stats                   func() etcd.Stats
	renew, failures, grants *prometheus.Desc
}

func newLeaseCollector(stats func() etcd.Stats) *leaseCollector {
	return &leaseCollector{
		stats:    stats,
		renew:    desc("guild_membership_lease_renew_seconds", "Renewals of the node's membership lease that etcd answered: count and round-trip time."),
		failures: desc("guild_membership_lease_renew_failures_total", "Renewals of the node's membership lease that failed (etcd unreachable or slow)."),
		grants:   desc("guild_membership_lease_grants_total", "Membership leases granted: one per join, one per lost lease replaced."),
	}
}

func (c *leaseCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, c.renew, c.failures, c.grants)
}

func (c *leaseCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstSummary(c.renew, s.Renewals, s.RenewTime.Seconds(), nil)
	ch <- counter(c.failures, s.Failures)
	ch <- counter(c.grants, s.Grants)
}

func (c *memberCollector) Collect(ch chan<- prometheus.Metric) {
	var yes, no int
	for _, m := range c.members() {
		if m.Available {
			yes++
		} else {
			no++
		}
	}
	ch <- gauge(c.count, float64(yes), "true")
	ch <- gauge(c.count, float64(no), "false")
}

// gatewayCollector exports gate.Gateway.Stats.
type gatewayCollector struct {
	stats                                 func() gate.Stats
	conns                                 func() int
	connsD, sessions, opened, responses   *prometheus.Desc
	pushes, dropped, coalesced, throttled *prometheus.Desc
	kicks, slow                           *prometheus.Desc
}

func newGatewayCollector(stats func() gate.Stats, conns func() int) *gatewayCollector {
	return &gatewayCollector{
		stats: stats, conns: conns,
		connsD:    desc("guild_gateway_connections", "Client connections open, in their handshake or with a session."),
		sessions:  desc("guild_gateway_sessions", "Client sessions open, by listener.", "listener"),
		opened:    desc("guild_gateway_sessions_opened_total", "Client sessions opened (handshake done), by listener.", "listener"),
		responses: desc("guild_gateway_responses_total", "Responses to client requests, by code (application codes as Code(1000)); the gateway's own refusals included.", "code"),
		pushes:    desc("guild_gateway_pushes_total", "Pushes that reached a session."),
		dropped:   desc("guild_gateway_pushes_dropped_total", "Droppable pushes dropped for a slow client."),
		coalesced: desc("guild_gateway_pushes_coalesced_total", "Pushes that replaced a waiting push of the same key."),
		throttled: desc("guild_gateway_broadcasts_throttled_total", "Group broadcasts dropped beyond the group's budget."),
		kicks:     desc("guild_gateway_kicks_total", "Sessions kicked."),
		slow:      desc("guild_gateway_slow_clients_total", "Clients cut off for reading too slowly."),
	}
}

func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, c.connsD, c.sessions, c.opened, c.responses, c.pushes, c.dropped, c.coalesced, c.throttled, c.kicks, c.slow)
}

func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- gauge(c.connsD, float64(c.conns()))
	for _, l := range s.Listeners {
		ch <- gauge(c.sessions, float64(l.Open), l.Kind)
		ch <- counter(c.opened, l.Opened, l.Kind)
	}
	for code, n := range s.Responses {
		ch <- counter(c.responses, n, codeLabel(code))
	}
	ch <- counter(c.pushes, s.Pushes)
	ch <- counter(c.dropped, s.Dropped)
	ch <- counter(c.coalesced, s.Coalesced)
	ch <- counter(c.throttled, s.Throttled)
	ch <- counter(c.kicks, s.Kicks)
	ch <- counter(c.slow, s.SlowClients)
}

// grainCollector exports grain.System.Stats.
type grainCollector struct {
	stats                                                  func() grain.Stats
	active, activations, deactivations, handovers, flushes *prometheus.Desc
	flushErrors, conflicts, forwarded, refused, failed     *prometheus.Desc
	saves                                                  *prometheus.Desc
}

func newGrainCollector(stats func() grain.Stats) *grainCollector {
	return &grainCollector{
		stats:         stats,
		active:        desc("guild_grains_active", "Grain activations alive on the node."),
		activations:   desc("guild_grain_activations_total", "Grain activations that loaded their state."),
		deactivations: desc("guild_grain_deactivations_total", "Grain activations stopped (idle, hand-over, close or failure)."),
		handovers:     desc("guild_grain_handovers_total", "Grains deactivated because another node became their owner."),
		flushes:       desc("guild_grain_flushes_total", "Successful writes of grain state to the store."),
		flushErrors:   desc("guild_grain_flush_errors_total", "Failed writes of grain state (retried)."),
		conflicts:     desc("guild_grain_conflicts_total", "Flushes refused for a version conflict (stale activations)."),
		forwarded:     desc("guild_grain_forwarded_total", "Grain messages this node's router forwarded to another node."),
		refused:       desc("guild_grain_refused_total", "Grain messages refused (too many hops, no host, failed activation)."),
		failed:        desc("guild_grain_activation_failures_total", "Activations that could not claim or load their grain."),
		saves:         desc("guild_grain_store_save_seconds", "Writes of grain state to the store (Save calls, whatever their outcome): count and time taken."),
	}
}

func (c *grainCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, c.active, c.activations, c.deactivations, c.handovers, c.flushes, c.flushErrors, c.conflicts, c.forwarded, c.refused, c.failed, c.saves)
}

func (c *grainCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- gauge(c.active, float64(s.Active))
	ch <- counter(c.activations, s.Activations)
	ch <- counter(c.deactivations, s.Deactivations)
	ch <- counter(c.handovers, s.Handovers)
	ch <- counter(c.flushes, s.Flushes)
	ch <- counter(c.flushErrors, s.FlushErrors)
	ch <- counter(c.conflicts, s.Conflicts)
	ch <- counter(c.forwarded, s.Forwarded)
	ch <- counter(c.refused, s.Refused)
	ch <- counter(c.failed, s.Failed)
	ch <- prometheus.MustNewConstSummary(c.saves, s.Saves, s.SaveTime.Seconds(), nil)
}

// tableCollector exports table.Group.Status.
type tableCollector struct {
	status                                   func() []table.Status
	info, loaded, loads, unchanged, failures *prometheus.Desc
	rows                                     *prometheus.Desc
}

func newTableCollector(status func() []table.Status) *tableCollector {
	return &tableCollector{
		status:    status,
		info:      desc("guild_table_set_info", "A table set the node serves, with the version it serves (empty before its first load).", "set", "version"),
		loaded:    desc("guild_table_set_loaded_timestamp_seconds", "When the set's snapshot was loaded (Unix time).", "set"),
		loads:     desc("guild_table_loads_total", "Loads of the set that published a new snapshot.", "set"),
		unchanged: desc("guild_table_reloads_unchanged_total", "Reloads of the set whose files had not changed.", "set"),
		failures:  desc("guild_table_reload_failures_total", "Reloads of the set that failed (the old snapshot stayed).", "set"),
		rows:      desc("guild_table_rows", "Rows of each table of the set's snapshot.", "set", "file"),
	}
}

func (c *tableCollector) Describe(ch chan<- *prometheus.Desc) {
	describe(ch, c.info, c.loaded, c.loads, c.unchanged, c.failures, c.rows)
}

func (c *tableCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.status() {
		ch <- gauge(c.info, 1, s.Set, s.Version.Hash)
		if !s.Version.Loaded.IsZero() {
			ch <- gauge(c.loaded, float64(s.Version.Loaded.UnixNano())/1e9, s.Set)
		}
		ch <- counter(c.loads, s.Loads, s.Set)
		ch <- counter(c.unchanged, s.Unchanged, s.Set)
		ch <- counter(c.failures, s.Failures, s.Set)
		for _, t := range s.Tables {
			ch <- gauge(c.rows, float64(t.Rows), s.Set, t.File)
		}
	}
}

// codeLabel is a status code's label value: its name ("OK", "NotFound"),
// or Code(n) for an application code.
func codeLabel(c rpc.Code) string {
	if c >= rpc.FirstApplicationCode {
		return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
	}
	return c.String()
}
