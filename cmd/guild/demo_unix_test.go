//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// Signals to a process group, as a shell makes one for each command and a
// terminal's Ctrl-C reaches all of it.

// startGroup makes cmd start in a process group of its own.
func startGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// interruptGroup sends SIGINT to cmd's process group: a terminal's Ctrl-C.
func interruptGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }

// killGroup sends SIGKILL to cmd's process group.
func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
