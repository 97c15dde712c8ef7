package agentws

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// rawAgent is an agent page made of a bare TCP connection: it runs no goroutine, so
// the goroutines a test counts are the server's.
type rawAgent struct {
	nc net.Conn
	br *bufio.Reader
}

// dialRawAgent upgrades a TCP connection to /ws by hand; early is written right after
// the upgrade request, in the same write (frames a client sends before the 101).
func dialRawAgent(t testing.TB, th *testHub, agent int, early []byte) *rawAgent {
	t.Helper()
	addr := strings.TrimPrefix(th.srv.URL, "http://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + Subprotocol + ", " + tokenSubprotocolPrefix + mustToken(t, agent) + "\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	a := &rawAgent{nc: nc, br: bufio.NewReader(nc)}
	resp, err := http.ReadResponse(a.br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade status %d", resp.StatusCode)
	}
	if m := a.next(t); !strings.Contains(m, `"type":"hello"`) {
		t.Fatalf("first message %s, want hello", m)
	}
	return a
}

// next reads one unfragmented text frame from the server.
func (a *rawAgent) next(t testing.TB) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(a.br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if h[0] != 0x81 { // FIN + text; the server sends no ping within a test's time
		t.Fatalf("frame header %#x, want a final text frame", h[0])
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(a.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(a.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(a.br, p); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return string(p)
}

// textFrame is a masked client text frame.
func textFrame(payload string) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	f = append(f, key[:]...)
	for i := 0; i < len(payload); i++ {
		f = append(f, payload[i]^key[i%4])
	}
	return f
}

// settle polls the goroutine count until ok accepts it (goroutines end asynchronously)
// and returns the last count seen.
func settle(ok func(n int) bool) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); !ok(n) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// TestIdleConnectionOneGoroutine: an idle agent page costs the server one goroutine
// (its reader), not a reader and an idle writer; all of them end when the pages close.
func TestIdleConnectionOneGoroutine(t *testing.T) {
	const pages = 100
	th := newTestHub(t, Options{})
	before := settle(func(int) bool { return true })
	agents := make([]*rawAgent, 0, pages)
	for i := range pages {
		agents = append(agents, dialRawAgent(t, th, 1000+i, nil))
	}
	if n := th.Connections(); n != pages {
		t.Fatalf("%d connections, want %d", n, pages)
	}
	// Each page got its hello: its writer ran and has nothing left to do.
	idle := settle(func(n int) bool { return n-before <= pages })
	if extra := idle - before; extra > pages {
		t.Fatalf("%d idle pages hold %d goroutines (%.2f each), want 1 each", pages, extra, float64(extra)/pages)
	}
	t.Logf("%d idle pages: %d goroutines", pages, idle-before)

	// A pop wakes a writer for its page only; it ends once the pop is written.
	mustPop(t, th.Hub, notification("call-idle", 1000, catalog.TriggerAutomatic, catalog.TargetEmbedded))
	if m := agents[0].next(t); !strings.Contains(m, `"type":"crm.pop"`) {
		t.Fatalf("got %s, want the pop", m)
	}
	if n := settle(func(n int) bool { return n-before <= pages }); n-before > pages {
		t.Fatalf("after a pop %d goroutines for %d pages", n-before, pages)
	}

	for _, a := range agents {
		a.nc.Close()
	}
	after := settle(func(n int) bool { return n <= before && th.Connections() == 0 })
	if th.Connections() != 0 || after > before {
		t.Fatalf("after closing every page: %d connections, %d goroutines (before %d)", th.Connections(), after, before)
	}
}

// TestEarlyAndLargeClientFrames: a frame the client sends with its upgrade request (read
// by net/http before the websocket took the connection) is not lost, and a message
// larger than the connection's read buffer is read whole, as a pop larger than its write
// buffer is written whole.
func TestEarlyAndLargeClientFrames(t *testing.T) {
	th := newTestHub(t, Options{})
	a := dialRawAgent(t, th, 7, textFrame(`{"type":"ping"}`))
	if m := a.next(t); m != `{"type":"pong"}` {
		t.Fatalf("got %s, want the pong of the early ping", m)
	}
	b := dialRawAgent(t, th, 8, nil) // a page with the small read buffer
	long := strings.Repeat("x", 3*wsReadBuffer)
	if _, err := b.nc.Write(textFrame(fmt.Sprintf(`{"type":"ack","id":%q}`, long))); err != nil {
		t.Fatal(err)
	}
	if m := b.next(t); !strings.Contains(m, "ack needs the pop id") {
		t.Fatalf("got %s, want the ack refused for its over-long id", m)
	}
	n := notification("call-big", 8, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	n.Request.URL = "https://crm.example.com/?pad=" + strings.Repeat("y", 3*wsWriteBuffer)
	mustPop(t, th.Hub, n)
	if m := b.next(t); !strings.Contains(m, `"type":"crm.pop"`) || !strings.Contains(m, strings.Repeat("y", 3*wsWriteBuffer)) {
		t.Fatalf("got %d bytes, want the whole pop", len(m))
	}
}

// TestUpgradeNotHijackable: a response writer that cannot be hijacked (HTTP/2, a
// recorder) gets the library's refusal, not a 101 the upgrade cannot honour.
func TestUpgradeNotHijackable(t *testing.T) {
	th := newTestHub(t, Options{})
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	r.Header.Set("Sec-WebSocket-Protocol", Subprotocol+", "+tokenSubprotocolPrefix+mustToken(t, 3))
	w := httptest.NewRecorder()
	th.ServeHTTP(w, r)
	if w.Code != http.StatusNotImplemented {
		t.Fatalf("status %d, want 501 (not hijackable)", w.Code)
	}
	if n := th.Connections(); n != 0 {
		t.Fatalf("%d connections registered after a failed upgrade", n)
	}
}
