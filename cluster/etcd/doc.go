// Package etcd keeps guild's cluster membership, global names and leases in
// etcd, and can run an embedded etcd server for development.
//
// # Keys
//
// Under Config.Prefix (default "/guild"):
//
//	<prefix>/members/<cluster.type.index>  JSON member record, attached to the node's lease
//	<prefix>/names/<name>                  "cluster.type.index/serial" (a PID), attached to the owner's lease
//
// A node's lease (Config.TTL) is kept alive while the node is joined. When
// the node crashes or loses etcd for longer than the TTL, etcd deletes its
// keys and every other node sees it leave and its names go. Leave revokes the
// lease at once.
//
// # Goroutines
//
// A Membership owns these goroutines, all started by New or Join and all
// stopped by Close, which waits for them:
//   - the members watcher: the only writer of the member view. It applies
//     watch events in revision order and publishes events; after a cancelled
//     or compacted watch it resyncs with a fresh Get and publishes the
//     differences.
//   - the names watcher: the only writer of the global-name cache.
//   - the keeper (while joined): consumes the lease keepalive responses; when
//     the lease is lost it grants a new one, puts the member record again,
//     re-registers the names this node held, and logs it.
//   - the event delivery goroutine, which calls Subscribe callbacks one at a
//     time, in order.
//
// Join, Update, Leave, Register and Unregister are serialized with each
// other and with the keeper's re-grant by one semaphore; Lookup and Members
// read under a mutex and never wait for etcd unless a name is not cached.
//
// # TLS and authentication
//
// Config.TLS makes every connection to etcd use TLS (https endpoints),
// with a client certificate for an etcd that requires one; Config.Username
// and Config.Password authenticate to an etcd with authentication enabled.
// A node opens one etcd client, used by its membership, names, grains'
// claims and leased IDs alike. Its etcd user needs read and write access
// to the keys under Config.Prefix + "/" only.
//
// etcd's client authenticates again each time it opens a stream, and the
// lease keeper opens one for each renewal (four per TTL), each costing the
// etcd server a bcrypt check of the password (tens of milliseconds of CPU
// at etcd's default --bcrypt-cost). With many nodes, prefer a user named
// by the client certificate's common name (no Username, no Password: etcd
// takes the user from the certificate), which costs nothing per request.
//
// # Development
//
// StartEmbedded runs an etcd server in-process (the "master" of skynet's and
// lotou's single-machine mode); point Config.Endpoints at its Endpoints.
package etcd
