// Package sockbuf sizes the receive buffer of the TCP connections that carry Asterisk's
// event stream.
//
// Asterisk writes each event with a write of its own, so a burst arrives as many small
// segments. Each takes far more receive-buffer memory than its bytes, and on a loopback
// connection (oml-crm beside Asterisk) the kernel's autotuning keeps the buffer small:
// in the load test the ARI event socket reached a zero window during bursts and the
// stream then stood still for the sender's 200 ms probe timer, every pop and CRM
// request behind it. A fixed, larger buffer (asterisk.receive_buffer) avoids it; the
// kernel caps it at net.core.rmem_max, which Set reports.
package sockbuf

import (
	"net"
)

// Set sets conn's receive buffer to size bytes when conn is a TCP connection and size
// is positive, and returns the size the kernel granted (0 when nothing was set or the
// kernel does not say). Setting it turns off the kernel's autotuning for conn.
func Set(conn net.Conn, size int) (granted int, err error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok || size <= 0 {
		return 0, nil
	}
	if err := tc.SetReadBuffer(size); err != nil {
		return 0, err
	}
	return receiveBuffer(tc), nil
}
