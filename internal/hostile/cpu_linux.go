package hostile

import (
	"net"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// threadCPU runs fn on an OS thread of its own and returns the CPU time
// (user and system) that thread spent in it: the attacker's own cost,
// the kernel's work on its writes included, in a process shared with
// the gateway. The thread ends with the goroutine (it stays locked), so
// that no other goroutine's work is counted.
func threadCPU(fn func()) time.Duration {
	runtime.LockOSThread()
	start := rusageThread()
	fn()
	return rusageThread() - start
}

func rusageThread() time.Duration {
	var r syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_THREAD, &r) != nil {
		return 0
	}
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// ProcessCPU returns the CPU time (user and system) the process has
// spent so far.
func ProcessCPU() time.Duration {
	var r syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &r) != nil {
		return 0
	}
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// unread returns the bytes received on c that its reader has not read
// (the kernel's receive queue), or -1 when it cannot tell.
func unread(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	_ = rc.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			n = int(v)
		}
	})
	return n
}
