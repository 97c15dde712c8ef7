package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 256)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := listen(t, path)
	for _, state := range []string{Ready, Stopping} {
		sent, err := Notify(path, state)
		if !sent || err != nil {
			t.Fatalf("Notify(%s): %v, %v", state, sent, err)
		}
		if got := read(t, c); got != state {
			t.Errorf("datagram %q, want %q", got, state)
		}
	}
}

// systemd usually hands out an abstract socket ("@/org/freedesktop/systemd1/notify/…").
func TestNotifyAbstractSocket(t *testing.T) {
	name := "@oml-crm-sdnotify-test-" + strconv.Itoa(os.Getpid())
	c := listen(t, name)
	if sent, err := Notify(name, Ready); !sent || err != nil {
		t.Fatalf("Notify: %v, %v", sent, err)
	}
	if got := read(t, c); got != Ready {
		t.Errorf("datagram %q", got)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	if sent, err := Notify("", Ready); sent || err != nil {
		t.Errorf("Notify without a socket: %v, %v; want nothing sent, no error", sent, err)
	}
	if sent, err := Notify(filepath.Join(t.TempDir(), "absent"), Ready); sent || err == nil {
		t.Errorf("Notify to a missing socket: %v, %v; want an error", sent, err)
	}
}
