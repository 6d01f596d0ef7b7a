//go:build !race

package main

// raceBuild reports whether this test binary has the race detector (see
// race_on_test.go).
const raceBuild = false
