//go:build unix

package httpserver

import "syscall"

// FDLimit is the process's RLIMIT_NOFILE soft limit (Go raises it to the hard limit at
// start), 0 when it cannot be read.
func FDLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}
