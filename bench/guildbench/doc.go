// Package guildbench holds guild's side of the peer benchmarks: the same
// shapes as bench/protoactor and bench/hollywood, written with guild's public
// API only.
package guildbench
