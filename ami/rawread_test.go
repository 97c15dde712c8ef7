package ami_test

import (
	"runtime"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/rawsock"
)

// The session reads its socket with raw system calls (internal/rawsock), so a burst of
// events does not wake the runtime's sysmon; the session works over it (events flow).
func TestSessionReadsRaw(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw reads are Linux only")
	}
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, nil)
	h.connected()
	if c := ami.SessionConn(h.client); c == nil {
		t.Fatal("no live session")
	} else if _, ok := c.(*rawsock.Conn); !ok {
		t.Fatalf("the session's connection is %T, want *rawsock.Conn", c)
	}
	if err := srv.Send([]byte("Event: Newchannel\r\nPrivilege: call,all\r\nUniqueid: 1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if m := h.event(); m.Get("Uniqueid") != "1.1" {
		t.Fatalf("event %v", m)
	}
}
