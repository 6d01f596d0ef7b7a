package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// kcp-go starts its timer scheduler (SystemTimedSched) once per process, at
// package initialisation: those goroutines are not leaks.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
	)
}
