//go:build linux && !race

package rawsock

import (
	"syscall"
	"unsafe"
)

// sysRead is read(2) without entering the scheduler's syscall state.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}
