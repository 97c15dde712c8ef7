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

	"github.com/rs/zerolog"
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

// Apply sets conn's receive buffer to size bytes (asterisk.receive_buffer) like Set, and
// logs on log what went wrong or that the kernel granted less than asked.
func Apply(conn net.Conn, size int, log zerolog.Logger) {
	granted, err := Set(conn, size)
	switch {
	case err != nil:
		log.Warn().Err(err).Int("asked", size).Msg("setting the connection's receive buffer (asterisk.receive_buffer)")
	case granted > 0 && granted < size:
		log.Warn().Int("asked", size).Int("granted", granted).
			Msg("the kernel granted a smaller receive buffer than asterisk.receive_buffer (net.core.rmem_max caps it): raise net.core.rmem_max so that bursts of events do not stall the stream")
	}
}
