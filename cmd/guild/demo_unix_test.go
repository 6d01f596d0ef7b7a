//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
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

// killStray kills the process group of pid when pid is still a process of
// the binary bin (its /proc cmdline says so; without /proc, nothing).
func killStray(bin string, pid int) {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.HasPrefix(cmdline, []byte(bin+"\x00")) {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
