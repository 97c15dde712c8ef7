//go:build linux && race

package rawsock

import "syscall"

// sysRead, under the race detector, is syscall.Read: the detector takes every read and
// write system call of the syscall package as synchronising (a byte written to a
// socket happens before it is read), which a raw read would hide, reporting races
// between goroutines that a socket orders.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
