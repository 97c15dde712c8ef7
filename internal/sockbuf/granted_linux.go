package sockbuf

import (
	"net"
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
