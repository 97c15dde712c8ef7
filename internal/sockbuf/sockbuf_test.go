package sockbuf

import (
	"net"
	"runtime"
	"testing"
)

func TestSet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			var b [1]byte
			_, _ = c.Read(b[:])
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if g, err := Set(conn, 0); g != 0 || err != nil {
		t.Errorf("Set(0) = %d, %v; want nothing set", g, err)
	}
	const asked = 256 << 10
	g, err := Set(conn, asked)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		return
	}
	want := asked
	if m, ok := Max(); ok && m < asked {
		want = m // the kernel's cap
	}
	if g != want {
		t.Errorf("granted %d bytes for %d asked; want %d", g, asked, want)
	}
	// Not a TCP connection: nothing to set.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if g, err := Set(a, asked); g != 0 || err != nil {
		t.Errorf("Set(pipe) = %d, %v", g, err)
	}
}
