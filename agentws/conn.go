package agentws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Close codes used by the hub.
const (
	statusNormal          = websocket.StatusNormalClosure
	statusGoingAway       = websocket.StatusGoingAway
	statusPolicyViolation = websocket.StatusPolicyViolation
	statusTryAgainLater   = websocket.StatusTryAgainLater
)

// consolePing is the application ping exactly as oml-crm.js (JSON.stringify) and Go's
// encoding/json write it; pongMessage answers any ping.
const (
	consolePing = `{"type":"` + TypePing + `"}`
	pongMessage = `{"type":"` + TypePong + `"}`
)

// consoleAckPrefix and consoleAckSuffix frame an ack exactly as oml-crm.js and Go's
// encoding/json write it: {"type":"ack","id":"<pop id>"}.
const (
	consoleAckPrefix = `{"type":"` + TypeAck + `","id":"`
	consoleAckSuffix = `"}`
)

// consoleAck returns the pop id of an ack written exactly as the console writes it,
// with an id of printable ASCII that JSON would not unescape or alter (no quote, no
// backslash); anything else (another spelling, another type) is not one: ok is false
// and the message takes the decoding path, whose answer is the same.
func consoleAck(data []byte) (id string, ok bool) {
	if len(data) <= len(consoleAckPrefix)+len(consoleAckSuffix) || string(data[:len(consoleAckPrefix)]) != consoleAckPrefix ||
		string(data[len(data)-len(consoleAckSuffix):]) != consoleAckSuffix {
		return "", false
	}
	raw := data[len(consoleAckPrefix) : len(data)-len(consoleAckSuffix)]
	if len(raw) > maxPopIDLen {
		return "", false
	}
	for _, b := range raw {
		if b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			return "", false
		}
	}
	return string(raw), true
}

// maxPopIDLen bounds the pop id a client may name in an ack or opened message.
const maxPopIDLen = 128

// sentMemory is how many recent pop ids a connection remembers, so that a pop arriving
// live while the same pop is being replayed is written once.
const sentMemory = 16

// outMsg is one queued server → client message.
type outMsg struct {
	data []byte
	kind uint8 // msgOther, msgPop, msgReplay: what to count when written
}

const (
	msgOther uint8 = iota
	msgPop
	msgReplay
)

// conn is one agent page. An idle connection costs one goroutine, its reader. A writer
// goroutine runs only while there is something to write (queued messages, a due ping,
// the close handshake) and exits when there is nothing left, so that the agents' idle
// pages cost a small reader stack each and not a second, idle, writer. The hub's deliver
// only enqueues.
type conn struct {
	hub     *Hub
	ws      *websocket.Conn
	id      string
	agentID int

	done      chan struct{} // closed by closeWith: the writer closes the websocket
	closeOnce sync.Once
	code      websocket.StatusCode // set once, before done is closed
	reason    string
	metric    string

	lastSeen atomic.Int64 // unix nanoseconds of the last message or pong
	lastSent atomic.Int64 // unix nanoseconds of the last message written (not pings)

	mu       sync.Mutex // guards the writer's state below
	queue    []outMsg   // waiting messages; nil when empty, so an idle page holds no array
	pingDue  bool       // the ping timer fired: the writer pings
	closing  bool       // closeWith was called: the writer runs the close handshake
	started  bool       // ws is set: a writer may run
	writing  bool       // a writer goroutine runs (stays true once it closed the websocket)
	pinger   *time.Timer
	finished chan struct{} // closed by the writer once the websocket is closed

	sentMu sync.Mutex
	sent   []string // ring of recent pop ids
	sentAt int
}

// serveWS authenticates, upgrades and runs one agent connection.
func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		h.refuse(w, r, http.StatusForbidden, "origin", "origin "+strconv.Quote(r.Header.Get("Origin"))+" is not allowed (agentws.allowed_origins)")
		return
	}
	agentID, err := h.authenticate(r)
	if err != nil {
		if errors.Is(err, errUnavailable) {
			h.log.Error().Err(err).Msg("cannot check agent credentials")
			h.refuse(w, r, http.StatusServiceUnavailable, "unavailable", "cannot check credentials now, retry later")
			return
		}
		h.refuseUnauthorized(w, r, err)
		return
	}
	c := &conn{
		hub:      h,
		id:       h.instance + "-" + strconv.FormatUint(h.connSeq.Add(1), 10),
		agentID:  agentID,
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	if status, msg := h.register(c); status != 0 {
		h.refuse(w, r, status, "limit", msg)
		return
	}

	ws, err := websocket.Accept(smallBuffers(w), r, &websocket.AcceptOptions{
		Subprotocols:       []string{Subprotocol},
		InsecureSkipVerify: true, // origin already checked above, with our own rules
		CompressionMode:    websocket.CompressionDisabled,
		OnPongReceived:     func(context.Context, []byte) { c.touch() },
	})
	if err != nil {
		h.unregister(c)
		h.log.Debug().Err(err).Msg("websocket upgrade failed")
		return
	}
	c.ws = ws
	ws.SetReadLimit(h.opts.MaxFrame)
	c.touch()
	h.log.Debug().Int("agent_id", agentID).Str("conn", c.id).Str("remote", r.RemoteAddr).Msg("agent connected")
	c.start()

	hello, _ := json.Marshal(map[string]any{"type": TypeHello, "agent_id": agentID, "server_version": h.opts.Version})
	c.send(outMsg{data: hello})
	c.replay()
	// The handler returns and a fresh goroutine reads: the handler's stack, grown by the
	// upgrade, the authentication and the replay, and net/http's request and response
	// are not kept for the connection's lifetime. register counted it in h.wg.
	go c.run()
}

// run reads until the connection ends, waits for the writer's close handshake, and
// unregisters the connection.
func (c *conn) run() {
	defer c.hub.unregister(c)
	c.readLoop()
	c.closeWith(statusNormal, "", "client_closed")
	<-c.finished
	c.hub.metrics.disconnects.WithLabelValues(c.metric).Inc()
	c.hub.log.Debug().Int("agent_id", c.agentID).Str("conn", c.id).Str("reason", c.reason).Str("cause", c.metric).Msg("agent disconnected")
}

// start lets writers run once the websocket is set, and arms the ping timer.
func (c *conn) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = true
	c.pinger = time.AfterFunc(c.hub.opts.PingInterval, c.pingTick)
	if c.closing || len(c.queue) > 0 {
		c.wakeLocked()
	}
}

// pingTick runs on the ping timer every PingInterval: the writer pings, unless a
// message went each way within the interval (the console's own ping and its pong, a pop
// and its ack). The page has then shown it is alive, and every proxy on the way has
// seen traffic both ways: a ping would prove nothing, and 2,000 consoles' pings were
// two thirds of an idle daemon's CPU. The timer still fires every interval, so no
// direction stays silent past two intervals, and a ping is skipped only while the
// next tick is still within IdleTimeout of the last message read.
func (c *conn) pingTick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.pinger.Reset(c.hub.opts.PingInterval)
	if c.busyBothWays(time.Now()) {
		c.hub.metrics.pingsSkipped.Inc()
		return
	}
	c.hub.metrics.pingsSent.Inc()
	c.pingDue = true
	c.wakeLocked()
}

// busyBothWays reports whether a message was read and one written within the last
// PingInterval, with the next tick still within IdleTimeout of the last read.
func (c *conn) busyBothWays(now time.Time) bool {
	o := &c.hub.opts
	in := now.Sub(time.Unix(0, c.lastSeen.Load()))
	out := now.Sub(time.Unix(0, c.lastSent.Load()))
	return in < o.PingInterval && out < o.PingInterval && in+o.PingInterval < o.IdleTimeout
}

// wakeLocked starts the writer unless one runs. c.mu is held. The writer is owned by
// the connection: run waits for finished, which the last writer closes. It runs on
// the hub's worker pool (a plain goroutine without one): a writer lives for one burst
// of messages, so a goroutine of its own was started, and its stack grown through the
// websocket write, for every pop and ping.
func (c *conn) wakeLocked() {
	if c.started && !c.writing {
		c.writing = true
		c.hub.opts.Goroutines.Go(c.writeLoop)
	}
}

// replay sends the agent's live pops on connect.
func (c *conn) replay() {
	ctx, cancel := context.WithTimeout(c.hub.ctx, c.hub.opts.AuthTimeout)
	defer cancel()
	pops, err := c.hub.store.live(ctx, c.agentID, time.Now())
	if err != nil {
		c.hub.log.Error().Err(err).Int("agent_id", c.agentID).Msg("cannot replay pending pops")
		return
	}
	for _, p := range pops {
		var m PopMessage
		if err := json.Unmarshal(p.Payload, &m); err != nil {
			continue
		}
		m.Replay, m.Opened = true, p.Opened
		b, err := json.Marshal(m)
		if err != nil {
			continue
		}
		c.sendPop(p.ID, p.Rev, b, true)
	}
}

func (c *conn) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// sendPop queues a pop unless this connection already got that id at that revision.
func (c *conn) sendPop(id string, rev int, payload []byte, replay bool) {
	if rev > 0 {
		id += "#" + strconv.Itoa(rev)
	}
	c.sentMu.Lock()
	for _, s := range c.sent {
		if s == id {
			c.sentMu.Unlock()
			return
		}
	}
	if len(c.sent) < sentMemory {
		c.sent = append(c.sent, id)
	} else {
		c.sent[c.sentAt] = id
		c.sentAt = (c.sentAt + 1) % sentMemory
	}
	c.sentMu.Unlock()
	kind := msgPop
	if replay {
		kind = msgReplay
	}
	c.send(outMsg{data: payload, kind: kind})
}

// send queues m without blocking; a full queue closes the connection (slow client).
func (c *conn) send(m outMsg) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.hub.opts.SendQueue {
		c.mu.Unlock()
		c.closeWith(statusTryAgainLater, "send queue full: client too slow", "slow_client")
		return
	}
	c.queue = append(c.queue, m)
	c.wakeLocked()
	c.mu.Unlock()
}

// closeWith asks the writer to close the connection with code and reason; the first call wins.
func (c *conn) closeWith(code websocket.StatusCode, reason, metric string) {
	c.closeOnce.Do(func() {
		c.code, c.reason, c.metric = code, reason, metric
		close(c.done)
		c.mu.Lock()
		c.closing = true
		c.wakeLocked()
		c.mu.Unlock()
	})
}

// writeLoop writes the queued messages and the due ping, then exits; once the
// connection is closing it runs the close handshake instead and ends the connection.
func (c *conn) writeLoop() {
	for {
		c.mu.Lock()
		switch {
		case c.closing:
			c.mu.Unlock()
			c.finish()
			return
		case len(c.queue) > 0:
			m := c.queue[0]
			c.queue[0] = outMsg{}
			c.queue = c.queue[1:]
			if len(c.queue) == 0 {
				c.queue = nil // an idle page keeps no array
			}
			c.mu.Unlock()
			c.write(m) // a failure closes: the next turn finishes
		case c.pingDue:
			c.pingDue = false
			c.mu.Unlock()
			c.ping()
		default:
			c.writing = false
			c.mu.Unlock()
			return
		}
	}
}

func (c *conn) write(m outMsg) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.opts.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, m.data); err != nil {
		if ctx.Err() != nil {
			c.closeWith(statusTryAgainLater, "write timeout: client too slow", "slow_client")
		} else {
			c.closeWith(statusGoingAway, "", "write_error")
		}
		return false
	}
	c.lastSent.Store(time.Now().UnixNano())
	switch m.kind {
	case msgPop:
		c.hub.metrics.popsSent.Inc()
	case msgReplay:
		c.hub.metrics.popsReplayed.Inc()
	}
	return true
}

// ping checks the peer is alive: a connection silent (no message, no pong) for
// IdleTimeout is closed.
func (c *conn) ping() bool {
	opts := &c.hub.opts
	silent := time.Since(time.Unix(0, c.lastSeen.Load()))
	wait := opts.IdleTimeout - silent
	if wait <= 0 {
		c.closeWith(statusPolicyViolation, "idle timeout", "idle_timeout")
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	select {
	case <-c.done: // do not hold a close behind a ping
		return false
	default:
	}
	if err := c.ws.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			c.closeWith(statusPolicyViolation, "idle timeout", "idle_timeout")
		} else {
			c.closeWith(statusGoingAway, "", "ping_error")
		}
		return false
	}
	return true
}

// finish runs the close handshake with the recorded code and reason (bounded by the
// websocket library's own timeouts), then drops the TCP connection.
func (c *conn) finish() {
	defer close(c.finished)
	c.mu.Lock()
	c.pinger.Stop()
	c.mu.Unlock()
	_ = c.ws.Close(c.code, c.reason)
	_ = c.ws.CloseNow()
}

// readLoop handles client messages until the connection fails or closes.
func (c *conn) readLoop() {
	bad := 0
	for {
		// Not the hub's context: the writer's close handshake ends the read.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrMessageTooBig):
				c.closeWith(websocket.StatusMessageTooBig, "frame too large", "frame_too_large")
			case websocket.CloseStatus(err) != -1:
				c.closeWith(statusNormal, "", "client_closed")
			default:
				select {
				case <-c.done: // we are closing: the reason is already recorded
				default:
					c.closeWith(statusGoingAway, "", "connection_lost")
				}
			}
			return
		}
		c.touch()
		if typ == websocket.MessageText && string(data) == consolePing {
			// The console's ping, every 25 s from every page: answered here, without
			// a hand-off to the pool and a JSON decode, which cost more than the rest.
			c.send(outMsg{data: []byte(pongMessage)})
			continue
		}
		if typ == websocket.MessageText && c.ackInReader(data) {
			continue
		}
		if problem := c.handleAside(typ, data); problem != "" {
			bad++
			if bad >= c.hub.opts.MaxBadMessages {
				c.closeWith(statusPolicyViolation, "too many invalid messages", "invalid_messages")
				// Keep reading so the close handshake completes.
				continue
			}
			msg, _ := json.Marshal(map[string]string{"type": TypeError, "error": problem})
			c.send(outMsg{data: msg})
		}
	}
}

// ackInReader records the console's ack of a pop in the reader when the pops are kept
// in this process: a map update under a lock, so the hand-off to the pool and back (two
// goroutine wake-ups, one ack per pop) costs more than the work. It reports whether it
// did; a Redis store, whose round trip would grow the reader's stack, is left to the
// pool, as is any other spelling of an ack.
func (c *conn) ackInReader(data []byte) bool {
	ms, local := c.hub.store.(*memoryStore)
	if !local {
		return false
	}
	id, ok := consoleAck(data)
	if !ok {
		return false
	}
	res, _ := ms.mark(c.hub.ctx, c.agentID, id, false) // the memory store never fails
	c.hub.metrics.marked(res, false)
	return true
}

// handleAside runs handle on another goroutine (a worker of the hub's pool, shared by
// every connection) and waits for it. The reader lives as long as the page, and a stack
// grown by handling a message (JSON, the pop store, Redis, logging) would stay grown
// until garbage collections shrink it back: 2,000 idle readers would keep 2,000 grown
// stacks, where the pool keeps as many as handle at once.
func (c *conn) handleAside(typ websocket.MessageType, data []byte) string {
	res := make(chan string, 1)
	c.hub.opts.Goroutines.Go(func() { res <- c.handle(typ, data) })
	return <-res
}

// handle processes one client message and returns what was wrong with it ("" = fine).
func (c *conn) handle(typ websocket.MessageType, data []byte) string {
	if typ != websocket.MessageText {
		return "binary messages are not accepted"
	}
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return "message is not a JSON object"
	}
	switch m.Type {
	case TypePing:
		c.send(outMsg{data: []byte(pongMessage)})
		return ""
	case TypeAck, TypeOpened:
		if m.ID == "" || len(m.ID) > maxPopIDLen {
			return m.Type + " needs the pop id"
		}
		opened := m.Type == TypeOpened
		ctx, cancel := context.WithTimeout(c.hub.ctx, c.hub.opts.AuthTimeout)
		defer cancel()
		res, err := c.hub.store.mark(ctx, c.agentID, m.ID, opened)
		if err != nil {
			c.hub.log.Error().Err(err).Int("agent_id", c.agentID).Msg("cannot record " + m.Type)
			return ""
		}
		if res == markUnknown {
			// A page may ack a pop whose call just ended; that is not abuse. Nothing is
			// said either way, so another agent's pop ids cannot be probed.
			return ""
		}
		c.hub.metrics.marked(res, opened)
		if opened {
			if err := c.hub.publish(ctx, event{Kind: eventOpened, Agent: c.agentID, ID: m.ID, Origin: c.id}); err != nil {
				c.hub.log.Error().Err(err).Msg("cannot tell the agent's other pages a pop was opened")
			}
		}
		return ""
	case "":
		return "message has no type"
	}
	return "unknown message type " + strconv.Quote(m.Type)
}
