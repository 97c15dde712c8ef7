// Package sdnotify tells systemd about the service's state (sd_notify(3)) so that a unit
// with Type=notify is "started" only once the daemon serves, not when the process
// exists. It is the protocol's few lines: one datagram on the $NOTIFY_SOCKET unix socket.
package sdnotify

import (
	"fmt"
	"net"
)

// States sent by the daemon.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state to the socket systemd named in $NOTIFY_SOCKET (pass its value). An
// empty socket means the process is not run by systemd with Type=notify: nothing is sent
// and sent is false. A socket starting with "@" is in the abstract namespace.
func Notify(socket, state string) (sent bool, err error) {
	if socket == "" {
		return false, nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return true, nil
}
