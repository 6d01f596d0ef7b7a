package grain

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
)

// EtcdClaimer keeps claims in etcd, under the lease of the node's
// membership: the claim of (kind, key) is the key
// "<prefix>/grains/<kind>/<key>", whose value is the owner's address. It is
// created in a transaction only when the key does not exist, so one node
// wins; and because it is bound to the owner's lease, the claims of a node
// that dies vanish when its lease expires (at most the membership's TTL),
// after which the survivors may activate its grains.
//
// If the membership loses its lease (etcd unreachable for longer than the
// TTL) and joins again with a new one, the claims made under the old lease
// are gone while the activations still run: another node may then activate
// the same grain. The store's versions catch that case: the stale
// activation's next flush fails with a conflict and it deactivates without
// writing.
type EtcdClaimer struct {
	m   *etcd.Membership
	pfx string
}

// NewEtcdClaimer returns a Claimer on m's etcd client and lease. prefix
// is the cluster's key prefix (etcd.Config.Prefix); "" means
// etcd.DefaultPrefix.
func NewEtcdClaimer(m *etcd.Membership, prefix string) *EtcdClaimer {
	if prefix == "" {
		prefix = etcd.DefaultPrefix
	}
	return &EtcdClaimer{m: m, pfx: strings.TrimRight(prefix, "/") + "/grains/"}
}

func (c *EtcdClaimer) key(id Identity) string { return c.pfx + id.Kind + "/" + id.Key }

// TryClaim implements Claimer. It fails with cluster.ErrNotJoined when the
// membership holds no lease.
func (c *EtcdClaimer) TryClaim(ctx context.Context, id Identity, self actor.Addr) (actor.Addr, error) {
	lease := c.m.Lease()
	if lease == 0 {
		return 0, fmt.Errorf("grain: claim %v: %w", id, cluster.ErrNotJoined)
	}
	key := c.key(id)
	tr, err := c.m.Client().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, self.String(), clientv3.WithLease(lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("grain: claim %v: %w", id, err)
	}
	if tr.Succeeded {
		return self, nil
	}
	kvs := tr.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, errors.New("grain: claim " + id.String() + ": the key vanished; try again")
	}
	h, err := actor.ParseAddr(string(kvs[0].Value))
	if err != nil {
		return 0, fmt.Errorf("grain: claim %v: bad holder %q: %w", id, kvs[0].Value, err)
	}
	if h == self && kvs[0].Lease != int64(lease) {
		// Ours, but under a lease this node no longer keeps: put it under
		// the current one.
		if _, err := c.m.Client().Put(ctx, key, self.String(), clientv3.WithLease(lease)); err != nil {
			return 0, fmt.Errorf("grain: claim %v: %w", id, err)
		}
	}
	return h, nil
}

// Release implements Claimer: it deletes the key if it still names self.
func (c *EtcdClaimer) Release(ctx context.Context, id Identity, self actor.Addr) error {
	key := c.key(id)
	_, err := c.m.Client().Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", self.String())).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("grain: release %v: %w", id, err)
	}
	return nil
}
