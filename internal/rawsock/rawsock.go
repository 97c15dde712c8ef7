// Package rawsock reads TCP sockets without the Go scheduler's system-call bookkeeping.
//
// Go's read(2) enters the scheduler's syscall state, and the first such entry after
// the whole process was idle wakes the runtime's monitor thread (sysmon), which then
// naps in 20 µs steps until the process is idle again. A daemon that wakes for each
// burst of Asterisk events paid that on every burst: under the load test, over half of
// the daemon's thread wake-ups were sysmon, woken by the AMI socket's read, and sysmon's
// naps were nearly half of its context switches (docs/benchmarks.md, round 7). A
// socket of the net package is non-blocking (the netpoller waits for it), so its read
// never blocks and needs none of that: Wrap's Conn reads with a raw system call and
// waits through the netpoller as net.Conn does, deadlines included. Under the race
// detector it reads with syscall.Read, which the detector takes as synchronising.
package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection whose Read is a raw read(2). Everything else is the
// connection's own.
type Conn struct {
	net.Conn
	rc syscall.RawConn

	mu     sync.Mutex // one Read at a time owns buf, n and errno
	buf    []byte
	n      int
	errno  syscall.Errno
	readFD func(fd uintptr) bool // c.readOnce, bound once: a method value per Read would allocate
}

// Wrap returns c reading with raw system calls when it is a *net.TCPConn on a system
// where that is done (Linux), and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !supported {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &Conn{Conn: c, rc: rc}
	r.readFD = r.readOnce
	return r
}

// Read reads like net.Conn's Read: it waits for data (or the read deadline), returns
// io.EOF at the peer's end of stream, and errors as net.OpError.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf, c.n, c.errno = p, 0, 0
	err := c.rc.Read(c.readFD)
	c.buf = nil
	if err != nil {
		// Deadline, closed connection: net's own error (errors.Is works as for Read),
		// named as a read's would be in logs.
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "raw-read" {
			oe.Op = "read"
		}
		return 0, err
	}
	if c.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", c.errno)}
	}
	if c.n == 0 {
		return 0, io.EOF
	}
	return c.n, nil
}
