package ami

import "net"

// BenchBlock exposes the benchmark stream generator to the external test package.
var BenchBlock = benchBlock

// SessionConn is the connection of the live session (nil between sessions).
func SessionConn(c *Client) net.Conn {
	if s := c.cur.Load(); s != nil {
		return s.conn
	}
	return nil
}
