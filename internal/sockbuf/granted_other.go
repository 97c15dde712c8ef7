//go:build !linux

package sockbuf

import "net"

// receiveBuffer does not read the size back outside Linux.
func receiveBuffer(*net.TCPConn) int { return 0 }

// Max is unknown outside Linux.
func Max() (int, bool) { return 0, false }
