//go:build race

package main

// raceBuild reports whether this test binary has the race detector: the
// builds that TestRollingUpgradeProcesses makes have it too, so that they
// reuse this binary's compiled packages and only link.
const raceBuild = true
