package httpserver

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Config is the hardening of the daemon's HTTP server.
type Config struct {
	Limits
	// ReadHeaderTimeout bounds reading a request's headers (a slow-header client).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, WriteTimeout writing its answer; both
	// are lifted for a websocket upgrade (the hub has its own ping and idle timeout).
	ReadTimeout, WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block (net/http reads up to 4 KiB more,
	// its first buffer, before refusing with 431).
	MaxHeaderBytes int
}

// New returns an http.Server serving h on a capped wrapping of ln, and that listener
// (to Serve, or to wrap in TLS first).
func New(ln net.Listener, h http.Handler, c Config, m *Metrics) (*http.Server, *Listener) {
	capped := NewListener(ln, c.Limits, m)
	cl := &clientLimiter{next: h, trusted: c.TrustedProxies, perClient: max(1, c.PerAddr), m: m, inflight: map[netip.Addr]int{}}
	srv := &http.Server{
		Handler:           cl,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ConnState:         capped.ConnState,
	}
	return srv, capped
}

// derivedCeiling bounds the derived connection cap on hosts with a huge descriptor limit:
// an idle connection costs ~20 KB (goroutine and buffers), and an OMniLeads node serves
// at most a few thousand agents, each holding one websocket and a page load or two.
const derivedCeiling = 10000

// FDReserve is how many descriptors the derived cap leaves to everything but the
// listener: outbound delivery and CRM login sockets, the SQLite files or PostgreSQL
// pool, Redis, the Asterisk connection, logs. A quarter of the limit, at least 256.
func FDReserve(nofile uint64) uint64 { return max(256, nofile/4) }

// MaxConns is the total cap: configured (0 = derived from the descriptor limit nofile),
// never above what nofile leaves after FDReserve. lowered reports a configured value
// that had to be lowered. nofile 0 (unknown) trusts configured, or derives 1024.
func MaxConns(configured int, nofile uint64) (n int, lowered bool) {
	ceiling := derivedCeiling
	if nofile > 0 {
		room := 64 // even a tiny limit serves probes and a few agents
		if nofile > FDReserve(nofile)+64 {
			room = int(min(nofile-FDReserve(nofile), 1<<30))
		}
		if configured > room {
			return room, true
		}
		ceiling = min(ceiling, room)
	} else if configured <= 0 {
		ceiling = 1024
	}
	if configured > 0 {
		return configured, false
	}
	return ceiling, false
}

// MaxConnsPerClient is the per-address cap: configured (0 = half the total, so one
// address can never take every connection), never above the total.
func MaxConnsPerClient(configured, total int) int {
	if configured <= 0 {
		return max(1, total/2)
	}
	return min(configured, total)
}

// clientLimiter caps the requests in progress per client behind a trusted proxy, where
// the listener sees only the proxy's address. An agent websocket is a request in
// progress for its whole life.
type clientLimiter struct {
	next      http.Handler
	trusted   []netip.Prefix
	perClient int
	m         *Metrics

	mu sync.Mutex
	// inflight has one entry per client with a request in progress, each on an open
	// connection: bounded by the listener's cap.
	inflight map[netip.Addr]int
}

func (cl *clientLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isUpgrade(r) {
		// A websocket lives past the request's deadlines; the hub pings and times it out.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}
	peer := peerAddr(remoteAddr(r.RemoteAddr))
	if !inPrefixes(cl.trusted, peer) {
		cl.next.ServeHTTP(w, r)
		return
	}
	client := ClientAddr(peer, r.Header.Values("X-Forwarded-For"), cl.trusted)
	cl.mu.Lock()
	if cl.inflight[client] >= cl.perClient {
		cl.mu.Unlock()
		cl.m.refuseRequest(reasonPerAddr)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections from "+client.String(), http.StatusServiceUnavailable)
		return
	}
	cl.inflight[client]++
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		if cl.inflight[client]--; cl.inflight[client] <= 0 {
			delete(cl.inflight, client)
		}
		cl.mu.Unlock()
	}()
	cl.next.ServeHTTP(w, r)
}

func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

func remoteAddr(s string) net.Addr { return stringAddr(s) }

// ClientAddr is the address of the client behind peer: peer itself unless peer is a
// trusted proxy, else the right-most X-Forwarded-For hop that is not a trusted proxy
// (hops left of it were written by the client and prove nothing). A malformed hop ends
// the walk at the last address trusted so far.
func ClientAddr(peer netip.Addr, xff []string, trusted []netip.Prefix) netip.Addr {
	if !inPrefixes(trusted, peer) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return client
			}
			client = a.Unmap()
			if !inPrefixes(trusted, client) {
				return client
			}
		}
	}
	return client
}
