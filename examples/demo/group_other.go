//go:build !unix

package demo

import "os/exec"

// ownGroup does nothing here: see demo_unix.go.
func ownGroup(*exec.Cmd) {}
