package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serve starts a hardened server on 127.0.0.1 with lim and returns its address.
func serve(t *testing.T, lim Limits, h http.Handler) (string, *Listener, *Metrics) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	lim.PlainHTTP = true
	srv, capped := New(ln, h, Config{
		Limits: lim, ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10,
	}, m)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(capped) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), capped, m
}

// dialFrom opens a TCP connection to addr from the loopback address src (127.0.0.0/8
// is all local on Linux, so each src is a distinct client address).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends a keep-alive GET on c and returns the status (0 and the error when the
// connection was closed instead).
func get(c net.Conn, br *bufio.Reader, header string) (int, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: t\r\n%s\r\n", header); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// idleConn opens a connection from src and makes one request on it: it is then an idle
// keep-alive connection (waited for: the server marks it idle just after answering, so
// that the idle connections' order is the order of the calls).
func idleConn(t *testing.T, l *Listener, src, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	before := l.idleCount()
	c := dialFrom(t, src, addr)
	br := bufio.NewReader(c)
	if st, err := get(c, br, ""); st != 200 {
		t.Fatalf("request from %s: %d %v", src, st, err)
	}
	for i := 0; i < 1000 && l.idleCount() <= before; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	return c, br
}

func (l *Listener) idleCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle.Len()
}

// busyConn opens a connection from src that has sent part of a request: in use.
func busyConn(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	c := dialFrom(t, src, addr)
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: t\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByServer reports whether the server closed c (EOF or reset, nothing sent).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// refused reads what a refused connection gets: a 503 then the close.
func refusedWith503(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("refused connection: %v (want a 503)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("refused connection: status %d, want 503", resp.StatusCode)
	}
}

// waitOpen waits until the listener counts n open connections (a close by the peer is
// seen by the server a moment later).
func waitOpen(t *testing.T, l *Listener, n int) {
	t.Helper()
	for i := 0; i < 500 && l.Open() != n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := l.Open(); got != n {
		t.Fatalf("open connections %d, want %d", got, n)
	}
}

func TestPerAddressCapEvictsOldestIdleThenRefuses(t *testing.T) {
	addr, l, m := serve(t, Limits{Max: 100, PerAddr: 3}, nil)
	first, _ := idleConn(t, l, "127.0.0.2", addr)
	idleConn(t, l, "127.0.0.2", addr)
	idleConn(t, l, "127.0.0.2", addr)

	// A fourth from the same address: the oldest idle one makes room.
	fourth, br := idleConn(t, l, "127.0.0.2", addr)
	if !closedByServer(first) {
		t.Fatal("the oldest idle connection of the over-cap address is still open")
	}
	if st, err := get(fourth, br, ""); st != 200 {
		t.Fatalf("newcomer reused: %d %v", st, err)
	}
	if v := testutil.ToFloat64(m.evicted.WithLabelValues("per_client")); v != 1 {
		t.Errorf("evicted{per_client} = %v, want 1", v)
	}
	waitOpen(t, l, 3)

	// With every connection of the address in use, the newcomer is refused, while
	// another address is served.
	addr2, l2, m2 := serve(t, Limits{Max: 100, PerAddr: 3}, nil)
	for range 3 {
		busyConn(t, "127.0.0.2", addr2)
	}
	refusedWith503(t, dialFrom(t, "127.0.0.2", addr2))
	if v := testutil.ToFloat64(m2.refused.WithLabelValues("per_client")); v != 1 {
		t.Errorf("refused{per_client} = %v, want 1", v)
	}
	idleConn(t, l2, "127.0.0.3", addr2)
}

func TestTotalCapEvictsOldestIdleOfAnyAddress(t *testing.T) {
	addr, l, m := serve(t, Limits{Max: 4, PerAddr: 4}, nil)
	busy := []net.Conn{busyConn(t, "127.0.0.2", addr), busyConn(t, "127.0.0.2", addr)}
	oldIdle, _ := idleConn(t, l, "127.0.0.4", addr)
	idleConn(t, l, "127.0.0.2", addr)
	waitOpen(t, l, 4)

	idleConn(t, l, "127.0.0.3", addr) // full: the oldest idle (from .4) makes room
	if !closedByServer(oldIdle) {
		t.Fatal("oldest idle connection still open at the total cap")
	}
	if v := testutil.ToFloat64(m.evicted.WithLabelValues("total")); v != 1 {
		t.Errorf("evicted{total} = %v, want 1", v)
	}
	for _, c := range busy { // requests in progress are never cut
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection in use was closed: %v", err)
		}
	}
}

func TestTotalCapRefusesWhenNothingIsIdle(t *testing.T) {
	addr, _, m := serve(t, Limits{Max: 2, PerAddr: 2}, nil)
	busyConn(t, "127.0.0.2", addr)
	busyConn(t, "127.0.0.3", addr)
	refusedWith503(t, dialFrom(t, "127.0.0.4", addr))
	if v := testutil.ToFloat64(m.refused.WithLabelValues("total")); v != 1 {
		t.Errorf("refused{total} = %v, want 1", v)
	}
}

func TestTrustedProxyClientsCappedByForwardedFor(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})
	addr, _, m := serve(t, Limits{Max: 100, PerAddr: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, h)
	defer close(release)
	hold := func(xff string) {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprintf(c, "GET /hold HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: %s\r\n\r\n", xff)
		<-entered
	}
	// The proxy holds more connections than the per-address cap: it is exempt.
	hold("10.0.0.1")
	hold("6.6.6.6, 10.0.0.1") // a spoofed left-most hop does not change the client
	for _, tc := range []struct {
		xff  string
		want int
	}{
		{"10.0.0.1", 503},            // third request in progress for 10.0.0.1
		{"10.0.0.2", 200},            // another client through the same proxy
		{"10.0.0.1, 127.0.0.1", 503}, // a trusted hop right of the client is skipped
	} {
		c := dialFrom(t, "127.0.0.1", addr)
		if st, err := get(c, bufio.NewReader(c), "X-Forwarded-For: "+tc.xff+"\r\n"); st != tc.want {
			t.Errorf("X-Forwarded-For %q: %d %v, want %d", tc.xff, st, err, tc.want)
		}
	}
	if v := testutil.ToFloat64(m.reqRef.WithLabelValues("per_client")); v != 2 {
		t.Errorf("requests_refused{per_client} = %v, want 2", v)
	}
	// An untrusted peer's X-Forwarded-For is ignored: its own address counts.
	c := dialFrom(t, "127.0.0.5", addr)
	if st, err := get(c, bufio.NewReader(c), "X-Forwarded-For: 10.0.0.1\r\n"); st != 200 {
		t.Errorf("untrusted peer claiming 10.0.0.1: %d %v", st, err)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.1.0.0/16")}
	proxy, other := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.9")
	for _, tc := range []struct {
		peer netip.Addr
		xff  []string
		want string
	}{
		{other, []string{"10.0.0.1"}, "192.0.2.9"},
		{proxy, nil, "127.0.0.1"},
		{proxy, []string{"10.0.0.1"}, "10.0.0.1"},
		{proxy, []string{"6.6.6.6, 10.0.0.1"}, "10.0.0.1"},
		{proxy, []string{"6.6.6.6", "10.0.0.1, 10.1.2.3"}, "10.0.0.1"},
		{proxy, []string{"10.1.2.3"}, "10.1.2.3"},
		{proxy, []string{"garbage, 10.1.2.3"}, "10.1.2.3"},
		{proxy, []string{"::ffff:10.0.0.7"}, "10.0.0.7"},
	} {
		if got := ClientAddr(tc.peer, tc.xff, trusted); got.String() != tc.want {
			t.Errorf("ClientAddr(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestHeaderLimit(t *testing.T) {
	addr, _, _ := serve(t, Limits{Max: 10, PerAddr: 10}, nil)
	// OMniLeads' Django cookies (sessionid, csrftoken) plus a generous 6 KiB of others.
	cookie := "Cookie: sessionid=" + strings.Repeat("s", 32) + "; csrftoken=" + strings.Repeat("c", 64) + "; other=" + strings.Repeat("o", 6<<10) + "\r\n"
	c := dialFrom(t, "127.0.0.1", addr)
	if st, err := get(c, bufio.NewReader(c), cookie); st != 200 {
		t.Fatalf("6 KiB of cookies: %d %v", st, err)
	}
	c = dialFrom(t, "127.0.0.1", addr)
	if st, err := get(c, bufio.NewReader(c), "X-Flood: "+strings.Repeat("a", 64<<10)+"\r\n"); st != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %d %v, want 431", st, err)
	}
}

func TestMaxConnsFromFDLimit(t *testing.T) {
	for _, tc := range []struct {
		configured  int
		nofile      uint64
		want        int
		wantLowered bool
	}{
		{0, 2048, 1536, false},
		{1500, 2048, 1500, false},
		{5000, 2048, 1536, true},
		{0, 1024, 768, false},
		{0, 65536, 10000, false},
		{20000, 65536, 20000, false},
		{0, 100, 64, false},
		{0, 0, 1024, false},
		{300, 0, 300, false},
	} {
		got, lowered := MaxConns(tc.configured, tc.nofile)
		if got != tc.want || lowered != tc.wantLowered {
			t.Errorf("MaxConns(%d, %d) = %d, %v; want %d, %v", tc.configured, tc.nofile, got, lowered, tc.want, tc.wantLowered)
		}
	}
	if got := MaxConnsPerClient(0, 1536); got != 768 {
		t.Errorf("derived per-client cap %d, want 768", got)
	}
	if got := MaxConnsPerClient(5000, 1536); got != 1536 {
		t.Errorf("per-client cap above the total: %d", got)
	}
}
