// Package protoactor holds the Proto.Actor (github.com/asynkron/protoactor-go)
// side of guild's comparison benchmarks. The benchmarks live in
// protoactor_test.go (local) and remote_test.go (two systems over loopback
// TCP); run them with
//
//	go test -run '^$' -bench . -benchmem ./protoactor
//
// Proto.Actor lives in its own package because it registers the protobuf
// file "actor.proto" (message actor.PID), as Hollywood does too; linking
// both into one binary panics at start-up with a registration conflict.
package protoactor
