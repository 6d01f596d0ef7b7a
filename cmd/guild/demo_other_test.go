//go:build !unix

package main

import (
	"os"
	"os/exec"
)

// Without process groups, the signals go to cmd's process alone.

func startGroup(*exec.Cmd) {}

func interruptGroup(cmd *exec.Cmd) { _ = cmd.Process.Signal(os.Interrupt) }

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// killStray does nothing without process groups and /proc.
func killStray(string, int) {}
