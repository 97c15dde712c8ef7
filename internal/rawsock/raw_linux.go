//go:build linux

package rawsock

import "syscall"

const supported = true

// readOnce is one non-blocking read(2) into c.buf; false asks the netpoller to wait for
// data.
func (c *Conn) readOnce(fd uintptr) bool {
	for {
		n, e := sysRead(fd, c.buf)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.n, c.errno = int(n), e
		return true
	}
}
