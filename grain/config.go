package grain

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
)

// Defaults of Config.
const (
	DefaultMaxHops      = 2
	DefaultClaimTimeout = 10 * time.Second
	DefaultStoreTimeout = 5 * time.Second
)

// Config configures a System.
type Config struct {
	// Node is the actor node the grains run on. Required. For a cluster
	// node, pass cluster.Node.Actor().
	Node *actor.Node
	// Membership is the node's view of the cluster: Start adds the hosted
	// kinds ("grain:<kind>" in Member.Services) and the PID of the node's
	// grain router (Member.Meta) to this node's record, and other nodes
	// read them. When the node has not joined, Start joins it, and Close
	// leaves. nil: a membership of this node alone (cluster.NewLocal).
	Membership cluster.Membership
	// Kinds are the kinds of grain this node hosts. A node may host none
	// and still send to grains hosted elsewhere.
	Kinds []Kind
	// Store keeps the grains' state. nil: an in-memory store (store/memstore) of this System's
	// own, which lives as long as the process.
	Store store.Store
	// Claims decides which node may activate a grain. nil: an EtcdClaimer
	// when Membership is a cluster/etcd Membership; otherwise SoleClaimer
	// (no per-grain cost), which is right only while this System is the
	// only one hosting its kinds: Start fails, and activations of a kind
	// are refused, while the membership shows another host of one of
	// them (several Systems in one process may share one LocalClaimer
	// instead).
	Claims Claimer
	// Logger receives activations that fail, flush errors and conflicts.
	// Default: the node's logger.
	Logger *slog.Logger
	// MaxHops bounds how many times a message is forwarded between nodes
	// whose views of the cluster disagree, before it is refused with
	// ErrUnavailable. Default DefaultMaxHops.
	MaxHops int
	// ClaimTimeout bounds how long a new activation waits for another
	// node to release the grain's claim (a handover in progress, or a dead
	// node's lease to expire). The messages of the grain wait with it.
	// Default DefaultClaimTimeout; keep it above the membership's TTL.
	ClaimTimeout time.Duration
	// StoreTimeout bounds each Load and Save. Default DefaultStoreTimeout.
	StoreTimeout time.Duration
	// Observe, optional, is told of every activation as it starts (it
	// claims the grain and loads its state), with the metadata of the
	// message that made it (trace context, say), and returns a function,
	// or nil, called once with how the start ended (nil: the grain is
	// active). It is how a tracer (package telemetry/tracing, ObserveGrain)
	// makes a span of each activation. It runs in the activation's turn,
	// so it must return at once; a panic in it is recovered and logged.
	Observe func(id Identity, md actor.Metadata) func(err error)
	// Push sends a push to a client session: needed by synced kinds
	// (Kind.Sync), to push their deltas. See PushFunc.
	Push PushFunc

	implicitSole bool // Claims was nil and defaulted to SoleClaimer
}

// Validate reports the first problem with c, as an error matching
// ErrBadConfig.
func (c *Config) Validate() error {
	if c.Node == nil {
		return fmt.Errorf("%w: no Node", ErrBadConfig)
	}
	if c.MaxHops < 0 || c.ClaimTimeout < 0 || c.StoreTimeout < 0 {
		return fmt.Errorf("%w: negative MaxHops, ClaimTimeout or StoreTimeout", ErrBadConfig)
	}
	seen := make(map[string]bool, len(c.Kinds))
	for i := range c.Kinds {
		k := &c.Kinds[i]
		if err := k.validate(); err != nil {
			return err
		}
		if err := k.validateSync(c.Push); err != nil {
			return err
		}
		if seen[k.Name] {
			return fmt.Errorf("%w: kind %q is given twice", ErrBadConfig, k.Name)
		}
		seen[k.Name] = true
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxHops == 0 {
		c.MaxHops = DefaultMaxHops
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = DefaultClaimTimeout
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Logger == nil {
		c.Logger = c.Node.Logger()
	}
	if c.Store == nil {
		c.Store = memstore.New()
	}
	if c.Claims == nil {
		if m, ok := c.Membership.(*etcd.Membership); ok {
			c.Claims = NewEtcdClaimer(m, m.Prefix())
		} else {
			c.Claims = SoleClaimer{}
			c.implicitSole = true
		}
	}
	return c
}
