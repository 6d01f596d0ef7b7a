//go:build unix

package demo

import (
	"os/exec"
	"syscall"
)

// ownGroup puts cmd's process in a process group of its own, so that a
// terminal's Ctrl-C (a SIGINT to the whole foreground group) reaches guild
// demo alone, which then stops its nodes in order: the node with the
// embedded etcd last, after the others have left through it. (Were all
// three interrupted at once, the etcd would go first and the others would
// wait on it until their shutdown timeouts.) A guild demo that is killed
// (SIGKILL) leaves its nodes running: the banner prints their pids.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
