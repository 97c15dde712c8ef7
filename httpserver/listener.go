// Package httpserver is the daemon's HTTP server made to stand a hostile network: a
// deadline on every phase of a connection, a header limit sized for agents and probes,
// and a listener that caps open connections in total and per client address, within the
// process's file-descriptor limit, so that idle or half-sent connections can never take
// the descriptors that deliveries, the databases and new agents need.
package httpserver

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Listener wraps a net.Listener with connection caps. Over a cap, the oldest idle
// keep-alive connection (of the same address for the per-address cap, of any address
// for the total cap) is closed to make room; when none is idle the newcomer is refused
// at once. Connections in use (a request being read or answered, an agent websocket)
// are never closed by the listener. Its ConnState method must be the http.Server's
// ConnState hook (NewServer wires it).
type Listener struct {
	inner   net.Listener
	max     int
	perAddr int
	trusted []netip.Prefix
	refusal []byte // written to a refused plain-HTTP connection before it is closed
	m       *Metrics

	mu    sync.Mutex
	total int
	// peers holds one entry per address with an open connection: bounded by max.
	peers map[netip.Addr]*peer
	idle  list.List // of *Conn, oldest idle first
}

type peer struct {
	open int
	idle list.List // of *Conn, oldest idle first
}

// Conn is a connection accepted by a Listener.
type Conn struct {
	net.Conn
	l    *Listener
	addr netip.Addr
	// Guarded by l.mu.
	released     bool
	gIdle, pIdle *list.Element // set while idle
}

// Close releases the connection's place under the caps and closes it.
func (c *Conn) Close() error {
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// Limits are a Listener's caps.
type Limits struct {
	// Max is the most connections open at once (> 0).
	Max int
	// PerAddr is the most connections open at once from one peer address (> 0); peers
	// in TrustedProxies are exempt (their clients are limited per request, see Server).
	PerAddr int
	// TrustedProxies are the reverse proxies (OMniLeads' nginx) whose connections carry
	// many clients.
	TrustedProxies []netip.Prefix
	// PlainHTTP: a refused connection is answered 503 before being closed (not with TLS,
	// where the listener sees no HTTP).
	PlainHTTP bool
}

// NewListener caps inner's connections. m may be nil.
func NewListener(inner net.Listener, lim Limits, m *Metrics) *Listener {
	l := &Listener{
		inner: inner, max: max(1, lim.Max), perAddr: max(1, lim.PerAddr),
		trusted: lim.TrustedProxies, m: m, peers: map[netip.Addr]*peer{},
	}
	if lim.PlainHTTP {
		l.refusal = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\n\r\ntoo many connections\n")
	}
	if m != nil {
		m.max.Set(float64(l.max))
	}
	return l
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close closes the inner listener; accepted connections stay open.
func (l *Listener) Close() error { return l.inner.Close() }

// Open returns how many accepted connections are open.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Accept returns the next connection admitted under the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.inner.Accept()
		if err != nil {
			return nil, err
		}
		c, victim, refused := l.admit(nc)
		if victim != nil {
			victim.Conn.Close()
		}
		if c != nil {
			return c, nil
		}
		l.refuse(nc, refused)
	}
}

// Reasons of a refusal or an eviction (metric label values).
const (
	reasonTotal   = "total"
	reasonPerAddr = "per_client"
)

// admit decides the newcomer's fate: admitted (c), possibly at the cost of an idle
// victim, or refused for the reason returned.
func (l *Listener) admit(nc net.Conn) (c *Conn, victim *Conn, refused string) {
	addr := peerAddr(nc.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[addr]
	if p != nil && p.open >= l.perAddr && !l.isTrusted(addr) {
		if victim = oldest(&p.idle); victim == nil {
			return nil, nil, reasonPerAddr
		}
		l.releaseLocked(victim)
		l.m.evict(reasonPerAddr)
	}
	if victim == nil && l.total >= l.max {
		if victim = oldest(&l.idle); victim == nil {
			return nil, nil, reasonTotal
		}
		l.releaseLocked(victim)
		l.m.evict(reasonTotal)
	}
	if p = l.peers[addr]; p == nil { // the victim may have been this address's last
		p = &peer{}
		l.peers[addr] = p
	}
	p.open++
	l.total++
	l.m.open(l.total)
	return &Conn{Conn: nc, l: l, addr: addr}, victim, ""
}

func oldest(idle *list.List) *Conn {
	if e := idle.Front(); e != nil {
		return e.Value.(*Conn)
	}
	return nil
}

func (l *Listener) refuse(nc net.Conn, reason string) {
	l.m.refuse(reason)
	if l.refusal != nil {
		// A fresh socket's send buffer is empty: this write does not wait for the peer.
		_ = nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = nc.Write(l.refusal)
	}
	nc.Close()
}

// releaseLocked takes c out of the counts (once).
func (l *Listener) releaseLocked(c *Conn) {
	if c.released {
		return
	}
	c.released = true
	l.unidleLocked(c)
	if p := l.peers[c.addr]; p != nil {
		if p.open--; p.open <= 0 {
			delete(l.peers, c.addr)
		}
	}
	l.total--
	l.m.open(l.total)
}

func (l *Listener) unidleLocked(c *Conn) {
	if c.gIdle != nil {
		l.idle.Remove(c.gIdle)
		c.gIdle = nil
	}
	if c.pIdle != nil {
		if p := l.peers[c.addr]; p != nil {
			p.idle.Remove(c.pIdle)
		}
		c.pIdle = nil
	}
}

// ConnState is the http.Server ConnState hook: it tracks which connections are idle
// keep-alive connections, the only ones the caps may close.
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
		nc = t.NetConn()
	}
	c, ok := nc.(*Conn)
	if !ok || c.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	l.unidleLocked(c)
	if s == http.StateIdle {
		c.gIdle = l.idle.PushBack(c)
		if p := l.peers[c.addr]; p != nil {
			c.pIdle = p.idle.PushBack(c)
		}
	}
}

func (l *Listener) isTrusted(a netip.Addr) bool { return inPrefixes(l.trusted, a) }

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the IP of a TCP peer (IPv4-mapped IPv6 unmapped); the zero Addr for other
// kinds of connection, which then share one entry.
func peerAddr(a net.Addr) netip.Addr {
	switch t := a.(type) {
	case *net.TCPAddr:
		return t.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
