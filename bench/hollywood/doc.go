// Package hollywood holds the Hollywood (github.com/anthdm/hollywood) side of
// guild's comparison benchmarks. The benchmarks live in hollywood_test.go
// (local) and remote_test.go (two engines over loopback TCP); run them with
//
//	go test -run '^$' -bench . -benchmem ./hollywood
//
// Hollywood lives in its own package because it registers the protobuf file
// "actor.proto" (message actor.PID), as Proto.Actor does too; linking both
// into one binary panics at start-up with a registration conflict.
package hollywood
