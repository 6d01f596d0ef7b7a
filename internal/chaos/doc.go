// Package chaos holds guild's chaos test: a seeded schedule of node kills,
// pauses longer than the lease TTL, network partitions, etcd outages and
// restarts, run against a cluster of real nodes (embedded etcd, real TCP
// through fault proxies: see cluster/clustertest) while clients write to
// and read from grains, call a singleton by its global name and send
// requests that are forwarded across nodes. Afterwards a checker reads the
// recorded history and fails the test on any violation of what guild
// promises:
//
//   - every acknowledged grain write is in the store exactly once, and no
//     write is there twice;
//   - no two activations of a grain served messages at overlapping times,
//     and no two holders of a global name did;
//   - every reply answers the request it was sent for;
//   - no call waited past its deadline;
//   - each grain's history of writes and reads is linearizable (checked
//     with porcupine).
//
// The test prints its seed; GUILD_CHAOS_SEED=n replays a schedule, and
// GUILD_CHAOS=10m runs a longer one (the default, run by CI, is short).
// The package has no code of its own: only the test.
package chaos
