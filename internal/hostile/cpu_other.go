//go:build !linux

package hostile

import (
	"net"
	"time"
)

// threadCPU runs fn; the CPU time is measured on Linux only (0 here).
func threadCPU(fn func()) time.Duration {
	fn()
	return 0
}

// ProcessCPU returns 0: the CPU time is measured on Linux only.
func ProcessCPU() time.Duration { return 0 }

// unread returns -1: the receive queue is measured on Linux only.
func unread(net.Conn) int { return -1 }
