package sockbuf

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// receiveBuffer reads SO_RCVBUF back. Linux reports twice what it grants for data (the
// other half is its bookkeeping), and grants at most net.core.rmem_max.
func receiveBuffer(tc *net.TCPConn) int {
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil || gerr != nil {
		return 0
	}
	return v / 2
}

// Max returns the largest receive buffer the kernel grants (net.core.rmem_max).
func Max() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return n, err == nil
}
