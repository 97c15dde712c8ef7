// Package agentws pushes CRM pops to agents' browsers. It serves GET /ws (an authenticated
// websocket per agent page), /oml-crm.js (the dependency-free browser client) and /agent
// (a demo agent page), routes each pop only to its agent's connections, replays the
// unacked pops of calls still in progress when an agent page reconnects (never after
// call.ended or the pop's expiry; a page acks a pop once it is done with it, see
// TypeAck), and with a Redis URL fans pops
// out across daemon instances so an agent may be connected to any of them.
//
// The daemon's dispatcher calls Hub.Pop when a call connects to an agent on a campaign
// whose site's trigger is agent or automatic, and Hub.CallEnded when the call ends.
package agentws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/lograte"
	"github.com/omlcrm/oml-crm/internal/workpool"
)

// AuthMode selects how /ws authenticates agents.
type AuthMode string

// Auth modes.
const (
	// AuthToken accepts an agent token (MintToken) in the Sec-WebSocket-Protocol header as
	// "token.<token>" or in the ?token= query parameter.
	AuthToken AuthMode = "token"
	// AuthDjangoSession accepts OMniLeads' Django session cookie, looked up through
	// Options.Sessions: drop-in behind the OMniLeads web server, same origin.
	AuthDjangoSession AuthMode = "django-session"
)

// Options configure a Hub. Zero values take the documented defaults.
type Options struct {
	Auth AuthMode // required
	// TokenSecret is the HMAC key of agent tokens (≥ MinTokenSecret bytes); required with AuthToken.
	TokenSecret []byte
	// TokenMaxTTL refuses a token expiring more than this after now (default 24h): a
	// token minted for longer, or a leaked one, is not honoured past the server's maximum.
	TokenMaxTTL time.Duration
	// SessionCookie is the Django session cookie name (default "sessionid").
	SessionCookie string
	// DjangoSecretKey is OMniLeads' Django SECRET_KEY; required with AuthDjangoSession. It
	// verifies the session data's signature and the session's user hash exactly as Django
	// does.
	DjangoSecretKey string
	// Sessions reads Django sessions and agent profiles; required with AuthDjangoSession.
	Sessions SessionStore
	// AllowedOrigins are the browser origins allowed to open /ws besides the hub's own host
	// (same origin is always allowed): "https://oml.example.com" (scheme://host[:port],
	// path.Match patterns allowed) or a bare host pattern "*.example.com". "*" allows any
	// origin: do not combine it with AuthDjangoSession (cross-site websocket hijacking).
	// A request without Origin (not a browser) is not origin-checked.
	AllowedOrigins []string

	// Goroutines runs the handling of agents' messages and the connections' writers (one
	// per burst of pops and pings) on reusable goroutines (the daemon's pool, closed
	// after the hub). Optional: nil runs each on a new goroutine.
	Goroutines *workpool.Pool

	PopTTL       time.Duration // a pop is replayable until ConnectedAt+PopTTL (default 2m)
	SendQueue    int           // per-connection outgoing queue; full = client closed (default 64)
	MaxFrame     int64         // largest client frame in bytes (default 4096)
	PingInterval time.Duration // websocket ping period, skipped after a message each way (default 20s)
	// IdleTimeout closes a connection that neither sent a message nor answered a ping for
	// this long (default 60s; must exceed PingInterval).
	IdleTimeout        time.Duration
	WriteTimeout       time.Duration // one frame write, else the client is closed as slow (default 10s)
	AuthTimeout        time.Duration // session store lookups (default 5s)
	MaxConnsPerAgent   int           // open pages per agent (default 16); beyond: 429
	MaxConns           int           // connections per instance (default 50000); beyond: 503
	MaxPendingPerAgent int           // pops kept for replay per agent (default 32)
	// MaxEndedCalls bounds the ended calls remembered (for PopTTL) to refuse their late
	// pops, single instance (default 100000: ~12 MB).
	MaxEndedCalls int
	// RefusalLogInterval is the least time between two log lines of refused upgrades of
	// one reason; each line counts the refusals not logged since the previous (default 10s).
	RefusalLogInterval time.Duration
	// SweepInterval is how often expired pops and ended calls are dropped from memory,
	// single instance (default 15s).
	SweepInterval time.Duration
	// MaxBadMessages is how many invalid client messages are answered with an error
	// before the connection is closed (default 5).
	MaxBadMessages int

	// RedisURL (redis://…) enables cluster mode: pops are stored and published through
	// Redis and every instance delivers to its own connections. Empty: single instance.
	RedisURL    string
	RedisPrefix string // key and channel prefix (default "omlcrm:")

	// Framing, when set, tells whether an embedded site refuses to be framed (see
	// crmnotify/framing); its answer becomes the pop's frame_refused.
	Framing FramePolicy

	Version    string // sent in hello
	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
}

func (o *Options) applyDefaults() {
	if o.SessionCookie == "" {
		o.SessionCookie = "sessionid"
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	setDur(&o.PopTTL, 2*time.Minute)
	setDur(&o.PingInterval, 20*time.Second)
	setDur(&o.IdleTimeout, 60*time.Second)
	setDur(&o.WriteTimeout, 10*time.Second)
	setDur(&o.AuthTimeout, 5*time.Second)
	setDur(&o.TokenMaxTTL, 24*time.Hour)
	setInt(&o.SendQueue, 64)
	setInt(&o.MaxConnsPerAgent, 16)
	setInt(&o.MaxConns, 50000)
	setInt(&o.MaxPendingPerAgent, 32)
	setInt(&o.MaxEndedCalls, 100000)
	setDur(&o.SweepInterval, 15*time.Second)
	setDur(&o.RefusalLogInterval, 10*time.Second)
	setInt(&o.MaxBadMessages, 5)
	if o.MaxFrame <= 0 {
		o.MaxFrame = 4096
	}
	if o.RedisPrefix == "" {
		o.RedisPrefix = "omlcrm:"
	}
}

func (o *Options) validate() error {
	switch o.Auth {
	case AuthToken:
		if len(o.TokenSecret) < MinTokenSecret {
			return fmt.Errorf("agentws.token_secret must be at least %d bytes with agentws.auth=token", MinTokenSecret)
		}
	case AuthDjangoSession:
		if o.Sessions == nil {
			return errors.New("agentws.auth=django-session needs the OMniLeads database (a session store)")
		}
		if o.DjangoSecretKey == "" {
			return errors.New("agentws.django_secret_key is required with agentws.auth=django-session (OMniLeads' SECRET_KEY)")
		}
	default:
		return fmt.Errorf("agentws.auth %q: want token or django-session", o.Auth)
	}
	if o.IdleTimeout <= o.PingInterval {
		return fmt.Errorf("agentws.idle_timeout (%s) must exceed agentws.ping_interval (%s)", o.IdleTimeout, o.PingInterval)
	}
	if o.MaxFrame < 256 {
		return fmt.Errorf("agentws.max_frame %d is too small (minimum 256 bytes)", o.MaxFrame)
	}
	return nil
}

// FramePolicy knows which CRM sites refuse to be framed. FrameRefused must not block.
type FramePolicy interface {
	FrameRefused(site *catalog.Site) bool
}

// Hub is the agent websocket server. It is safe for concurrent use.
type Hub struct {
	opts     Options
	log      zerolog.Logger
	refusals *lograte.Limiter // one refusal line per reason and remote host each RefusalLogInterval
	metrics  *metrics
	store    popStore
	rdb      *redis.Client // nil without cluster mode
	instance string        // random id of this hub, prefixes connection ids
	mux      *http.ServeMux

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // connections and the Redis subscriber

	mu     sync.RWMutex
	conns  map[int][]*conn // agent id → open connections
	nconns int
	closed bool

	connSeq atomic.Uint64
	popTTL  atomic.Int64 // time.Duration: Options.PopTTL, changed by SetPopTTL

}

// New builds a hub. In cluster mode it connects to Redis and subscribes to the event
// channel before returning. Close releases it.
func New(opts Options) (*Hub, error) {
	opts.applyDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register agentws metrics: %w", err)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		opts:     opts,
		log:      opts.Logger.With().Str("component", "agentws").Logger(),
		refusals: lograte.New(opts.RefusalLogInterval, 256),
		metrics:  m,
		instance: hex.EncodeToString(id[:]),
		ctx:      ctx,
		cancel:   cancel,
		conns:    map[int][]*conn{},
	}
	h.popTTL.Store(int64(opts.PopTTL))
	if opts.RedisURL == "" {
		ms := newMemoryStore(opts.MaxPendingPerAgent, opts.MaxEndedCalls)
		h.store = ms
		if err := m.registerStoreSizes(opts.Registerer, ms); err != nil {
			cancel()
			return nil, fmt.Errorf("register agentws metrics: %w", err)
		}
		// Swept on a timer, not only when a pop is added: a deployment with only
		// server-trigger campaigns ends calls but never pops.
		h.wg.Add(1)
		go h.sweepMemory(ms)
	} else if err := h.startRedis(); err != nil {
		cancel()
		return nil, err
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /ws", h.serveWS)
	h.mux.HandleFunc("GET /oml-crm.js", serveAsset("oml-crm.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("GET /agent.js", serveAsset("agent.js", "text/javascript; charset=utf-8"))
	h.mux.HandleFunc("GET /agent", serveAgentPage)
	return h, nil
}

func (h *Hub) startRedis() error {
	ropts, err := redis.ParseURL(h.opts.RedisURL)
	if err != nil {
		// The URL may hold a password: do not quote it.
		return errors.New("cluster.redis_url is not a valid redis:// URL")
	}
	h.rdb = redis.NewClient(ropts)
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := h.rdb.Ping(ctx).Err(); err != nil {
		h.rdb.Close()
		return fmt.Errorf("connect to cluster.redis_url (%s): %w", ropts.Addr, err)
	}
	h.store = &redisStore{rdb: h.rdb, prefix: h.opts.RedisPrefix, ttl: h.PopTTL, maxPerAgent: h.opts.MaxPendingPerAgent}
	sub := h.rdb.Subscribe(ctx, h.eventChannel())
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		sub.Close()
		h.rdb.Close()
		return fmt.Errorf("subscribe to Redis channel %s: %w", h.eventChannel(), err)
	}
	h.wg.Add(1)
	go h.receiveEvents(sub)
	return nil
}

func (h *Hub) eventChannel() string { return h.opts.RedisPrefix + "events" }

// sweepMemory sweeps the single-instance store every SweepInterval until Close.
func (h *Hub) sweepMemory(ms *memoryStore) {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			ms.sweep(now)
		}
	}
}

// receiveEvents delivers the cluster's events to local connections until Close. go-redis
// resubscribes by itself after a Redis outage; events published meanwhile are lost, which
// the replay on reconnect covers for pops.
func (h *Hub) receiveEvents(sub *redis.PubSub) {
	defer h.wg.Done()
	defer sub.Close()
	ch := sub.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-h.ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var ev event
			if err := json.Unmarshal([]byte(msg.Payload), &ev); err != nil {
				h.log.Warn().Err(err).Msg("ignoring undecodable cluster event")
				continue
			}
			h.deliver(ev)
		}
	}
}

// Handler returns the hub's HTTP handler (/ws, /oml-crm.js, /agent, /agent.js).
func (h *Hub) Handler() http.Handler { return h }

// ServeHTTP serves /ws, /oml-crm.js, /agent and /agent.js.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close closes every connection with "going away", stops the Redis subscriber and waits
// for the hub's goroutines. Pop and CallEnded fail afterwards.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var all []*conn
	for _, cs := range h.conns {
		all = append(all, cs...)
	}
	h.mu.Unlock()
	for _, c := range all {
		c.closeWith(statusGoingAway, "server shutting down", "shutdown")
	}
	h.cancel()
	h.wg.Wait()
	if h.rdb != nil {
		return h.rdb.Close()
	}
	return nil
}

// SetPopTTL changes Options.PopTTL while running (a SIGHUP reload). Pops made afterwards
// are replayable until ConnectedAt+d; pops made before keep the expiry they were given.
// d <= 0 restores the default (2m). It is safe for concurrent use.
func (h *Hub) SetPopTTL(d time.Duration) {
	if d <= 0 {
		d = 2 * time.Minute
	}
	h.popTTL.Store(int64(d))
}

// PopTTL returns the TTL given to new pops.
func (h *Hub) PopTTL() time.Duration { return time.Duration(h.popTTL.Load()) }

// ErrClosed is returned by Pop and CallEnded after Close.
var ErrClosed = errors.New("agent hub is closed")

// Pop sends n to its agent's connections (on every instance in cluster mode) and keeps it
// for replay until its call ends or ConnectedAt+PopTTL. The same n.ID is delivered once
// per revision, however many times or on however many instances it is popped: a higher
// n.Rev of a known id is an update (delivered, and replayed instead of the earlier
// revision), a lower or equal one a duplicate. A pop that has already
// expired, or whose call already ended, is dropped (counted, not an error).
func (h *Hub) Pop(ctx context.Context, n crmnotify.Notification) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	now := time.Now()
	at := n.ConnectedAt
	if at.IsZero() {
		at = now
	}
	expires := at.Add(h.PopTTL())
	msg, err := buildPop(n, expires)
	if err != nil {
		return err
	}
	if h.opts.Framing != nil && msg.Target == catalog.TargetEmbedded.String() {
		msg.FrameRefused = h.opts.Framing.FrameRefused(n.Site)
	}
	if !now.Before(expires) {
		h.metrics.popsDropped.WithLabelValues("expired").Inc()
		h.log.Debug().Str("notification_id", n.ID).Str("call_id", n.CallID).Msg("pop expired before delivery; dropped")
		return nil
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode pop %s: %w", n.ID, err)
	}
	added, err := h.store.add(ctx, &pendingPop{
		ID: n.ID, AgentID: n.AgentID, CallID: n.CallID, Target: msg.Target,
		ExpiresAt: expires, Payload: payload, Rev: n.Rev,
	})
	if err != nil {
		return fmt.Errorf("pop %s to agent %d: %w", n.ID, n.AgentID, err)
	}
	if !added {
		h.metrics.popsDropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	if n.Replaces != "" {
		// The ringing pop this one supersedes is not replayed any more.
		if _, err := h.store.mark(ctx, n.AgentID, n.Replaces, false); err != nil {
			h.log.Warn().Err(err).Str("notification_id", n.Replaces).Msg("cannot retire the ringing pop replaced by a connect")
		}
	}
	return h.publish(ctx, event{Kind: eventPop, Agent: n.AgentID, ID: n.ID, Rev: n.Rev, Payload: payload})
}

// CallEnded tells the agents that got pops of callID that the call ended (call.ended),
// forgets those pops (no replay) and refuses pops of that call arriving later.
func (h *Hub) CallEnded(ctx context.Context, callID string) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if callID == "" {
		return errors.New("call ended: empty call id")
	}
	agents, err := h.store.endCall(ctx, callID, h.PopTTL())
	if err != nil {
		return err
	}
	if len(agents) == 0 {
		return nil
	}
	return h.publish(ctx, event{Kind: eventEnded, Agents: agents, Call: callID})
}

// event is what travels between instances (and, without Redis, straight to deliver).
type event struct {
	Kind    string          `json:"k"`
	Agent   int             `json:"a,omitempty"`
	Agents  []int           `json:"as,omitempty"`
	ID      string          `json:"id,omitempty"`
	Rev     int             `json:"r,omitempty"` // pop revision
	Call    string          `json:"c,omitempty"`
	Origin  string          `json:"o,omitempty"` // connection that opened the pop
	Payload json.RawMessage `json:"p,omitempty"`
}

const (
	eventPop    = "pop"
	eventEnded  = "ended"
	eventOpened = "opened"
)

func (h *Hub) publish(ctx context.Context, ev event) error {
	if h.rdb == nil {
		h.deliver(ev)
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode cluster event: %w", err)
	}
	if err := h.rdb.Publish(ctx, h.eventChannel(), b).Err(); err != nil {
		return fmt.Errorf("publish %s event on Redis: %w", ev.Kind, err)
	}
	return nil
}

// deliver hands an event to this instance's connections. It never blocks: a connection
// whose queue is full is closed.
func (h *Hub) deliver(ev event) {
	switch ev.Kind {
	case eventPop:
		for _, c := range h.agentConns(ev.Agent) {
			c.sendPop(ev.ID, ev.Rev, ev.Payload, false)
		}
	case eventEnded:
		msg, _ := json.Marshal(map[string]string{"type": TypeCallEnded, "call_id": ev.Call})
		for _, a := range ev.Agents {
			for _, c := range h.agentConns(a) {
				c.send(outMsg{data: msg})
			}
		}
	case eventWithdrawn:
		h.deliverWithdrawn(ev)
	case eventOpened:
		msg, _ := json.Marshal(map[string]string{"type": TypePopOpened, "id": ev.ID})
		for _, c := range h.agentConns(ev.Agent) {
			if c.id != ev.Origin {
				c.send(outMsg{data: msg})
			}
		}
	}
}

func (h *Hub) agentConns(agentID int) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]*conn(nil), h.conns[agentID]...)
}

// register adds c unless a limit refuses it; the returned status is the HTTP refusal.
func (h *Hub) register(c *conn) (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return http.StatusServiceUnavailable, "server shutting down"
	case h.nconns >= h.opts.MaxConns:
		return http.StatusServiceUnavailable, "too many connections on this instance"
	case len(h.conns[c.agentID]) >= h.opts.MaxConnsPerAgent:
		return http.StatusTooManyRequests, "too many open pages for agent " + strconv.Itoa(c.agentID)
	}
	h.conns[c.agentID] = append(h.conns[c.agentID], c)
	h.nconns++
	h.wg.Add(1)
	h.metrics.connections.Set(float64(h.nconns))
	h.metrics.agents.Set(float64(len(h.conns)))
	return 0, ""
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	cs := h.conns[c.agentID]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i:i], cs[i+1:]...)
			h.nconns--
			break
		}
	}
	if len(cs) == 0 {
		delete(h.conns, c.agentID)
	} else {
		h.conns[c.agentID] = cs
	}
	h.metrics.connections.Set(float64(h.nconns))
	h.metrics.agents.Set(float64(len(h.conns)))
	h.mu.Unlock()
	h.wg.Done()
}

// Connections returns how many agent connections are open on this instance.
func (h *Hub) Connections() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.nconns
}
