package rawsock_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/internal/rawsock"
)

// pair returns a wrapped client connection and the server's end, on 127.0.0.1.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	w := rawsock.Wrap(c)
	t.Cleanup(func() { w.Close(); srv.Close() })
	return w, srv
}

func requireRaw(t *testing.T, c net.Conn) {
	t.Helper()
	if _, ok := c.(*rawsock.Conn); !ok {
		if runtime.GOOS == "linux" {
			t.Fatalf("Wrap of a TCP connection on Linux gave %T", c)
		}
		t.Skipf("raw reads are Linux only (%s)", runtime.GOOS)
	}
}

// Bytes written in many pieces, with pauses (reads that wait for the netpoller), arrive
// whole and in order, and the peer's close is io.EOF.
func TestReadsTheStream(t *testing.T) {
	c, srv := pair(t)
	requireRaw(t, c)
	var want bytes.Buffer
	go func() {
		for i := range 200 {
			chunk := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*37%3000)
			if _, err := srv.Write(chunk); err != nil {
				return
			}
			if i%20 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		srv.Close()
	}()
	for i := range 200 {
		want.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*37%3000))
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes, want %d (or different)", len(got), want.Len())
	}
	if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
}

// A read deadline ends a waiting Read as net.Conn's does (os.ErrDeadlineExceeded, a
// timeout net.Error), and data that arrives after it is still read.
func TestReadDeadline(t *testing.T) {
	c, srv := pair(t)
	requireRaw(t, c)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 16))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v, want a timeout with os.ErrDeadlineExceeded", err)
	}
	if !strings.HasPrefix(err.Error(), "read tcp ") {
		t.Errorf("error %q, want it named as a read's (\"read tcp …\")", err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("Read returned after %s, before its deadline", waited)
	}
	_ = c.SetReadDeadline(time.Time{})
	if _, err := srv.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("Read after the deadline was cleared = %q, %v", buf[:n], err)
	}
}

// Closing the connection ends a waiting Read with net.ErrClosed.
func TestCloseEndsRead(t *testing.T) {
	c, _ := pair(t)
	requireRaw(t, c)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// A reset by the peer is a read error naming the system call, not io.EOF.
func TestResetIsAnError(t *testing.T) {
	c, srv := pair(t)
	requireRaw(t, c)
	if _, err := c.Write([]byte("unread by the peer")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_ = srv.(*net.TCPConn).SetLinger(0)
	srv.Close() // unread data + linger 0: the peer sends RST
	_, err := c.Read(make([]byte, 16))
	var se *os.SyscallError
	if err == nil || err == io.EOF || !errors.As(err, &se) || se.Syscall != "read" {
		t.Fatalf("Read after a reset: %v, want a read system-call error", err)
	}
}

// Reading allocates nothing.
func TestReadAllocatesNothing(t *testing.T) {
	c, srv := pair(t)
	requireRaw(t, c)
	buf := make([]byte, 64)
	msg := []byte("0123456789")
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := srv.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per write and read, want 0", allocs)
	}
}

// Only TCP connections are wrapped.
func TestWrapLeavesOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := rawsock.Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe) = %T, want the pipe itself", got)
	}
}
