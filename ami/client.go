// Package ami is oml-crm's Asterisk Manager Interface client: the framing Reader, login
// (plain and MD5 challenge), actions matched by ActionID, the event stream, and a session
// loop that reconnects forever.
//
// # Session
//
// Dial validates the Config, starts the session loop and returns at once: the daemon
// starts even while Asterisk is down. The loop connects (TCP, optionally TLS), reads the
// `Asterisk Call Manager/x.y.z` banner, logs in (with the Events mask), reports
// StateConnected through OnState, sends the configured Filter rules, and then reads
// messages until the connection fails. It then reports StateDisconnected (with the cause),
// waits an exponential backoff with jitter (100 ms … 800 ms) and connects again, until the
// Dial context ends or Close is called. A failed first connection attempt is reported
// through OnState(StateDisconnected, err) as well, so a consumer learns why nothing arrives;
// later failed attempts are only logged. WaitConnected blocks until the session is up.
//
// # Events
//
// Events are handed to Handler synchronously, one at a time, in arrival order, from the
// session goroutine. Nothing is dropped or buffered without bound: while Handler runs,
// nothing more is read, so a slow consumer slows the TCP connection (Asterisk buffers and,
// past its own limits, drops the session, which this client reports and repairs). OnState
// is called from the same goroutine, so StateConnected comes before the session's first
// event and StateDisconnected after its last one. The *Message passed to Handler is reused
// after Handler returns; its strings stay valid (see Message). Handler and OnState must not
// wait for an action (the reply could only be read after they return) nor call Close:
// start a goroutine for that.
//
// Events that belong to a list action (`EventList: start` … `EventList: Complete`, such
// as CoreShowChannel) go to that action's Response, not to Handler. With EventNames set,
// other events are discarded by the Reader without being parsed or allocated.
//
// # Failure
//
// A message with a line longer than MaxLine, larger than MaxMessage or with more than
// MaxHeaders headers is discarded whole (up to MaxSkip bytes) without losing the
// session when nobody needs it: an event outside EventNames or one SkipOversized
// accepts (counted in omlcrm_ami_oversized_skipped_total), or an action's reply (that
// action fails). Any other such message, a bad banner, a failed login, a write error, and a stall (no data for
// PingInterval, then no answer to a Ping within StallTimeout) all end the session, are
// logged with the offending size or reason, and lead to a reconnect. Actions in flight fail
// with an error wrapping ErrDisconnected; actions issued while disconnected fail at once
// with ErrNotConnected.
package ami

import (
	"cmp"
	"context"
	"crypto/md5"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/backoff"
	"github.com/omlcrm/oml-crm/internal/rawsock"
	"github.com/omlcrm/oml-crm/internal/sockbuf"
)

// State is the client's connection state, reported through Config.OnState.
type State int

const (
	// StateDisconnected: no session; actions fail with ErrNotConnected.
	StateDisconnected State = iota
	// StateConnected: logged in; events flow and actions are sent.
	StateConnected
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Defaults for the Config durations.
const (
	DefaultActionTimeout  = 5 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultStallTimeout   = 5 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultReconnectMin   = 100 * time.Millisecond
	// DefaultReconnectMax is short so the client is back within a second of Asterisk
	// accepting logins again, however long it was down (a refused connect on loopback
	// costs nothing; the jitter keeps daemons out of step).
	DefaultReconnectMax = 800 * time.Millisecond
)

// failedLogEvery spaces the connection failures logged above debug level.
const failedLogEvery = 30 * time.Second

// DefaultMaxSkip is Config.MaxSkip's default.
const DefaultMaxSkip = 64 << 20

// maxPending bounds the actions awaiting a response on one session.
const maxPending = 4096

// Config configures a Client. Address and Username are required; zero values elsewhere
// take the documented defaults.
type Config struct {
	Address  string      // host:port of the manager interface, e.g. 127.0.0.1:5038
	Username string      // manager.conf user
	Secret   string      // its secret; never logged
	AuthMD5  bool        // log in with the MD5 challenge (Action: Challenge) instead of the plain secret
	TLS      *tls.Config // non-nil: connect with TLS (manager.conf tlsenable); ServerName defaults to Address's host
	// ReceiveBuffer, when positive, is the TCP receive buffer asked for the connection
	// (internal/sockbuf: Asterisk's events arrive as many small segments); 0 leaves the
	// kernel's autotuning.
	ReceiveBuffer int

	// Events is the Login `Events:` mask: event classes such as "call", "dialplan",
	// "agent" (joined with commas); empty means "on" (all classes the user may read).
	Events []string
	// Filters are server-side rules sent with `Action: Filter` / `Operation: Add` after
	// each login (Asterisk keeps them per session), as legacy eventfilter patterns: a POSIX
	// extended regex over the whole event text, `!` first for an exclude rule (see
	// EventFilterRule). A rejected rule is logged and the session goes on: EventNames and
	// Accept still filter on this side. A manager user without `write = system` gets
	// `Permission denied` for every rule: that is logged once at info level per Client (the documented
	// manager.conf stanza does not grant system, so it is expected, not a fault) and
	// the session's remaining rules are not sent. Rules apply only to events Asterisk
	// queues, not to action replies and list items (CoreShowChannel, Status), which it
	// writes to the session directly.
	Filters []string
	// EventNames, when non-nil, are the only events handed to Handler (exact names, as
	// Asterisk spells them); the others are skipped without being parsed. Nil: all events.
	EventNames []string
	// Accept, when non-nil, takes a second look at each event EventNames let through,
	// before it is copied out of the read buffer (see Reader.ReadMessageSelected): false
	// drops it without an allocation. It runs on the reader goroutine, must be quick, and
	// must not keep the View. Events of list actions (CoreShowChannel…) are never shown.
	Accept func(v *View) bool

	// Handler receives each event (see the package documentation for the threading and
	// ownership rules). Nil: events are read and discarded.
	Handler func(m *Message)
	// OnState is told of each connection state change, with the cause of a disconnection
	// (ErrClosed when Close or the Dial context ended it). Nil: not called.
	OnState func(s State, err error)

	ActionTimeout  time.Duration // per action, when the caller's context has no earlier deadline (5 s)
	PingInterval   time.Duration // silence before the client sends a keep-alive Ping (20 s)
	StallTimeout   time.Duration // wait for any data after that Ping before reconnecting (5 s)
	ConnectTimeout time.Duration // TCP + TLS + banner + login (10 s)
	ReconnectMin   time.Duration // first reconnect delay (100 ms); doubles per failure, with jitter
	ReconnectMax   time.Duration // reconnect delay cap (800 ms)

	MaxLine    int // longest line, without its line ending (64 KiB)
	MaxMessage int // largest message (1 MiB)
	MaxHeaders int // most headers per message (1024)
	// MaxSkip bounds the bytes discarded to skip one message that breaks a limit (64 MiB;
	// negative: never skip, every such message ends the session).
	MaxSkip int64
	// SkipOversized reports whether an event that broke a limit may be dropped without
	// ending the session, given its name and, for VarSet, the variable (as far as they
	// were readable; "" otherwise). Events outside EventNames are always dropped; an
	// action's oversized reply fails that action only. Nil: every other oversized event
	// ends the session (the reconnect's resync then recovers what it carried).
	SkipOversized func(event, variable string) bool

	Logger  zerolog.Logger // zero value: no logging
	Metrics *Metrics       // nil: no metrics
}

// Errors returned by the client. Use errors.Is.
var (
	ErrNotConnected  = errors.New("ami: not connected to Asterisk")
	ErrDisconnected  = errors.New("ami: connection to Asterisk lost")
	ErrClosed        = errors.New("ami: client closed")
	ErrActionTimeout = errors.New("ami: action timed out")
	ErrStalled       = errors.New("ami: Asterisk stalled")
	ErrTooManyActive = errors.New("ami: too many actions awaiting a response")
)

// ActionError is an action Asterisk answered with `Response: Error`.
type ActionError struct {
	Action   string // the action's name
	ActionID string
	Message  string // Asterisk's Message header, e.g. "No such channel"
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("ami: %s (ActionID %s) failed: %s", e.Action, e.ActionID, e.Message)
}

// LoginError is a login Asterisk refused (wrong user or secret, or an ACL).
type LoginError struct {
	Username string
	Message  string // e.g. "Authentication failed"
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("ami: login as %q refused: %s", e.Username, e.Message)
}

// Response is an action's answer. For a list action (`EventList: start`) Events holds the
// listed events in order and Complete the closing event (e.g. CoreShowChannelsComplete
// with ListItems). All of it belongs to the caller.
type Response struct {
	*Message
	Events   []*Message
	Complete *Message
}

// Client is a running AMI session loop. Its methods are safe for concurrent use.
type Client struct {
	cfg      Config
	log      zerolog.Logger
	lim      Limits
	wanted   map[string]struct{} // nil: all events
	idPrefix string
	seq      atomic.Uint64

	// oversized events skipped since skipLogged (the reading goroutine only)
	skipped    int
	skipLogged time.Time

	filterDenied atomic.Bool // a Filter's Permission denied was logged

	cancel  context.CancelFunc
	done    chan struct{}
	closing atomic.Bool
	once    sync.Once

	cur atomic.Pointer[session]

	mu      sync.Mutex
	state   State
	changed chan struct{} // closed and replaced on each state change
}

// Dial validates cfg and starts the session loop, returning at once (see the package
// documentation). It fails only on an invalid Config. The loop runs until ctx ends or
// Close is called.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("ami: Config.Address is empty (want host:port of the manager interface)")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("ami: Config.Address %q: %w", cfg.Address, err)
	}
	if cfg.Username == "" {
		return nil, errors.New("ami: Config.Username is empty")
	}
	if err := checkValue("Config.Username", cfg.Username); err != nil {
		return nil, err
	}
	if err := checkValue("Config.Secret", cfg.Secret); err != nil {
		return nil, errors.New("ami: Config.Secret contains a line break")
	}
	for i, e := range cfg.Events {
		if e == "" || strings.ContainsAny(e, ",\r\n") {
			return nil, fmt.Errorf("ami: Config.Events[%d] %q is not an event class", i, e)
		}
	}
	for i, f := range cfg.Filters {
		if f == "" || strings.ContainsAny(f, "\r\n") {
			return nil, fmt.Errorf("ami: Config.Filters[%d] is empty or spans lines", i)
		}
	}
	defDur(&cfg.ActionTimeout, DefaultActionTimeout)
	defDur(&cfg.PingInterval, DefaultPingInterval)
	defDur(&cfg.StallTimeout, DefaultStallTimeout)
	defDur(&cfg.ConnectTimeout, DefaultConnectTimeout)
	defDur(&cfg.ReconnectMin, DefaultReconnectMin)
	defDur(&cfg.ReconnectMax, DefaultReconnectMax)
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = cfg.ReconnectMin
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger.With().Str("component", "ami").Str("address", cfg.Address).Logger(),
		lim:      Limits{MaxLine: cfg.MaxLine, MaxMessage: cfg.MaxMessage, MaxHeaders: cfg.MaxHeaders, MaxSkip: max(cmp.Or(cfg.MaxSkip, DefaultMaxSkip), 0)}.withDefaults(),
		idPrefix: randomPrefix(),
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
	}
	if cfg.EventNames != nil {
		c.wanted = make(map[string]struct{}, len(cfg.EventNames))
		for _, n := range cfg.EventNames {
			c.wanted[n] = struct{}{}
		}
	}
	ctx, c.cancel = context.WithCancel(ctx)
	go c.run(ctx)
	return c, nil
}

func defDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func randomPrefix() string {
	var b [4]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "omlcrm"
	}
	return "omlcrm-" + hex.EncodeToString(b[:])
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Banner returns the current session's banner (`Asterisk Call Manager/11.0.0`), or ""
// when disconnected.
func (c *Client) Banner() string {
	if s := c.cur.Load(); s != nil {
		return s.banner
	}
	return ""
}

// WaitConnected blocks until the client is connected, ctx ends, or the client is closed.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch := c.state, c.changed
		c.mu.Unlock()
		if st == StateConnected {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("ami: waiting for the connection to %s: %w", c.cfg.Address, ctx.Err())
		case <-c.done:
			return ErrClosed
		}
	}
}

// Close logs off (waiting up to a second for Asterisk's Goodbye), stops the session loop
// and waits for it to end. It is idempotent and must not be called from Handler or
// OnState (cancel Dial's context there instead).
func (c *Client) Close() error {
	c.once.Do(func() {
		c.closing.Store(true)
		if s := c.cur.Load(); s != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if _, err := c.send(ctx, s, "Logoff", nil); err != nil {
				c.log.Debug().Err(err).Msg("logoff before close")
			}
			cancel()
		}
		c.cancel()
	})
	<-c.done
	return nil
}

func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	if c.state == s {
		c.mu.Unlock()
		return
	}
	c.state = s
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.cfg.Metrics.setConnected(s == StateConnected)
	if c.cfg.OnState != nil {
		c.cfg.OnState(s, err)
	}
}

// run is the session loop: connect, serve, back off, again.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	retry := backoff.New(backoff.Policy{Min: c.cfg.ReconnectMin, Max: c.cfg.ReconnectMax})
	var logged time.Time // last failed attempt logged above debug level
	announced := false   // the reconnect after a healthy session was logged at info
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.cfg.Metrics.reconnect()
		}
		s, err := c.connect(ctx)
		switch {
		case err == nil:
			up := time.Now()
			c.serve(ctx, s)
			if time.Since(up) >= c.cfg.ReconnectMax {
				retry.Reset() // a long healthy session: reconnect fast
			}
			logged, announced = time.Time{}, false
		case c.closed(ctx):
		default:
			c.cfg.Metrics.sessionError(errorKind(err))
			// Retries come every second at most: during an outage log the first failure
			// and then one every failedLogEvery, the others at debug level.
			ev := c.log.Debug()
			if now := time.Now(); logged.IsZero() || now.Sub(logged) >= failedLogEvery {
				ev, logged = c.log.Error(), now
			}
			ev.Err(err).Int("attempt", attempt+1).Msg("cannot connect to Asterisk")
			if attempt == 0 {
				c.reportInitialFailure(err)
			}
		}
		if c.closed(ctx) {
			c.setState(StateDisconnected, ErrClosed)
			return
		}
		delay := retry.Next()
		ev := c.log.Debug()
		if !announced {
			ev, announced = c.log.Info(), true
		}
		ev.Dur("retry_in_ms", delay).Msg("reconnecting to Asterisk")
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			c.setState(StateDisconnected, ErrClosed)
			return
		case <-t.C:
		}
	}
}

func (c *Client) closed(ctx context.Context) bool { return ctx.Err() != nil || c.closing.Load() }

// reportInitialFailure tells OnState why the very first connection failed; the state is
// already StateDisconnected, so setState would not call it.
func (c *Client) reportInitialFailure(err error) {
	if c.cfg.OnState != nil {
		c.cfg.OnState(StateDisconnected, err)
	}
}

// errorKind classifies a session error for the session_errors_total metric.
func errorKind(err error) string {
	var le *LimitError
	var pe *ProtocolError
	var lo *LoginError
	switch {
	case errors.As(err, &le):
		return "limit"
	case errors.As(err, &pe):
		return "protocol"
	case errors.As(err, &lo):
		return "login"
	case errors.Is(err, ErrStalled):
		return "stall"
	}
	return "io"
}

// session is one TCP connection, from login to failure.
type session struct {
	conn   net.Conn
	rd     *Reader
	src    *connReader
	banner string

	wmu sync.Mutex // one action on the wire at a time

	mu      sync.Mutex
	pending map[string]*pending
	ended   error // non-nil once the session is over

	lists int // open list responses; touched by the reading goroutine only
}

// pending is an action awaiting its response.
type pending struct {
	action    string
	ch        chan result // capacity 1: the reader never blocks on it
	abandoned bool        // the caller gave up; swallow the response (and its list)
	list      *Response   // a list being collected
}

type result struct {
	resp *Response
	err  error
}

// connect dials, reads the banner and logs in. It returns a session ready to serve.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("ami: connecting to %s: %w", c.cfg.Address, err)
	}
	sockbuf.Apply(conn, c.cfg.ReceiveBuffer, c.log)
	conn = rawsock.Wrap(conn) // reads without waking the runtime's sysmon on every burst
	if c.cfg.TLS != nil {
		tc := c.cfg.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(c.cfg.Address)
		}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("ami: TLS handshake with %s: %w", c.cfg.Address, err)
		}
		conn = tconn
	}
	// The connect deadline bounds the banner and login; ctx cancellation interrupts them.
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	s := &session{conn: conn, pending: make(map[string]*pending)}
	s.src = &connReader{c: c, s: s}
	s.rd = NewReader(s.src, c.lim)
	err = c.login(s)
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		conn.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			err = fmt.Errorf("ami: no login answer from %s within %s: %w", c.cfg.Address, c.cfg.ConnectTimeout, err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

func (c *Client) login(s *session) error {
	banner, err := s.rd.ReadBanner()
	if err != nil {
		return fmt.Errorf("ami: %s: %w", c.cfg.Address, err)
	}
	s.banner = banner
	events := "on"
	if len(c.cfg.Events) > 0 {
		events = strings.Join(c.cfg.Events, ",")
	}
	var m *Message
	if c.cfg.AuthMD5 {
		m, err = c.roundTrip(s, "Challenge", Header{"AuthType", "MD5"})
		if err != nil {
			return err
		}
		challenge := m.Get("Challenge")
		if challenge == "" {
			return &LoginError{Username: c.cfg.Username, Message: "MD5 challenge refused: " + m.Get("Message")}
		}
		sum := md5.Sum([]byte(challenge + c.cfg.Secret))
		m, err = c.roundTrip(s, "Login",
			Header{"AuthType", "MD5"}, Header{"Username", c.cfg.Username},
			Header{"Key", hex.EncodeToString(sum[:])}, Header{"Events", events})
	} else {
		m, err = c.roundTrip(s, "Login",
			Header{"Username", c.cfg.Username}, Header{"Secret", c.cfg.Secret}, Header{"Events", events})
	}
	if err != nil {
		return err
	}
	if !equalFoldASCII(m.Get("Response"), "Success") {
		return &LoginError{Username: c.cfg.Username, Message: m.Get("Message")}
	}
	return nil
}

// roundTrip sends an action during login, when no reading goroutine runs yet, and reads
// until its response. Asterisk sends no events before a successful login.
func (c *Client) roundTrip(s *session, action string, headers ...Header) (*Message, error) {
	id := c.nextID()
	if _, err := s.conn.Write(appendAction(nil, action, id, headers)); err != nil {
		return nil, fmt.Errorf("ami: sending %s to %s: %w", action, c.cfg.Address, err)
	}
	var m Message
	for {
		if err := s.rd.ReadMessage(&m); err != nil {
			return nil, fmt.Errorf("ami: reading the %s response from %s: %w", action, c.cfg.Address, err)
		}
		if m.IsResponse() && m.Get("ActionID") == id {
			return m.Clone(), nil
		}
		c.log.Debug().Str("event", m.Event()).Msgf("ignoring a message before %s completed", action)
	}
}

// serve runs a logged-in session until it fails, and reports why through OnState.
func (c *Client) serve(ctx context.Context, s *session) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	c.cur.Store(s)
	c.log.Info().Str("banner", s.banner).Str("username", c.cfg.Username).Msg("connected to Asterisk")
	c.setState(StateConnected, nil)

	var filters sync.WaitGroup
	if len(c.cfg.Filters) > 0 {
		filters.Go(func() { c.sendFilters(ctx, s) })
	}
	s.src.live = true
	err := c.readLoop(s)

	c.cur.CompareAndSwap(s, nil)
	s.conn.Close()
	s.end(err)
	filters.Wait()
	if c.closed(ctx) {
		err = ErrClosed
	} else {
		c.cfg.Metrics.sessionError(errorKind(err))
		ev := c.log.Warn()
		var le *LimitError
		if errors.As(err, &le) {
			ev = c.log.Error().Str("limit", le.What).Int("size", le.Size).Int("max", le.Max)
		}
		ev.Err(err).Msg("AMI session lost")
	}
	c.setState(StateDisconnected, err)
}

func (c *Client) sendFilters(ctx context.Context, s *session) {
	for _, f := range c.cfg.Filters {
		_, err := c.send(ctx, s, "Filter", []Header{{"Operation", "Add"}, {"Filter", f}})
		var ae *ActionError
		switch {
		case errors.As(err, &ae) && equalFoldASCII(ae.Message, "Permission denied"):
			// Every rule would be denied alike; the cause is the manager user's write classes.
			if !c.filterDenied.Swap(true) {
				c.log.Info().Str("username", c.cfg.Username).
					Msg("Asterisk refused the Filter action (Permission denied: the manager user has no write = system): every event crosses the socket and is filtered here; keep unneeded events off the wire with eventfilter lines in manager.conf (docs/omnileads.md)")
			}
			return
		case errors.As(err, &ae):
			c.log.Error().Str("filter", f).Str("reason", ae.Message).Msg("Asterisk rejected a Filter rule; events are still filtered by name here")
		case err != nil:
			c.log.Warn().Str("filter", f).Err(err).Msg("sending a Filter rule")
			return
		}
	}
}

// readLoop reads and dispatches messages until the connection fails.
func (c *Client) readLoop(s *session) error {
	counters := newEventCounters(c.cfg.Metrics)
	keep := func(ev []byte) bool {
		counters.inc(ev)
		if c.wanted == nil || s.lists > 0 {
			return true
		}
		_, ok := c.wanted[string(ev)]
		return ok
	}
	var accept func(v *View) bool
	if c.cfg.Accept != nil {
		accept = func(v *View) bool { return s.lists > 0 || c.cfg.Accept(v) }
	}
	var m Message
	for {
		kept, err := s.rd.ReadMessageSelected(&m, keep, accept)
		if err != nil {
			var oe *OversizeError
			if errors.As(err, &oe) && c.skipOversized(s, oe) {
				continue
			}
			return err
		}
		if kept {
			c.dispatch(s, &m, counters)
		}
	}
}

// skipOversized decides about a message the Reader discarded for breaking a limit:
// true goes on with the session. An action's reply (or list item) fails that action;
// an event nobody reads is counted and forgotten; any other event ends the session.
func (c *Client) skipOversized(s *session, oe *OversizeError) bool {
	if oe.ActionID != "" && (oe.Response || s.lists > 0) && c.failAction(s, oe.ActionID, oe) {
		c.log.Warn().Err(oe).Msg("an action's reply broke asterisk.ami limits; that action failed, the session goes on")
		return true
	}
	if oe.Response || oe.Event == "" {
		return false
	}
	_, wanted := c.wanted[oe.Event]
	if c.wanted != nil && !wanted || c.cfg.SkipOversized != nil && c.cfg.SkipOversized(oe.Event, oe.Variable) {
		c.cfg.Metrics.skippedOversized()
		// At most one line a minute: a dialplan loop can make every event oversized.
		c.skipped++
		if now := time.Now(); now.Sub(c.skipLogged) >= time.Minute {
			c.log.Warn().Err(oe).Int("skipped", c.skipped).
				Msg("skipped oversized AMI events the call tracker does not need (asterisk.ami.max_line / max_message); the session goes on")
			c.skipLogged, c.skipped = now, 0
		}
		return true
	}
	c.log.Error().Err(oe).Msg("an AMI event the call tracker needs broke asterisk.ami.max_line / max_message: reconnecting (the resync recovers calls in progress)")
	return false
}

// failAction ends a pending action with err; false if none is pending under id.
func (c *Client) failAction(s *session, id string, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	if p == nil {
		return false
	}
	delete(s.pending, id)
	if p.list != nil {
		s.lists--
	}
	if !p.abandoned {
		p.ch <- result{err: err}
	}
	return true
}

func (c *Client) dispatch(s *session, m *Message, counters *eventCounters) {
	if len(m.Headers) == 0 {
		return
	}
	first := m.Headers[0]
	if equalFoldASCII(first.Key, "Response") {
		c.handleResponse(s, m)
		return
	}
	ev := first.Value
	if !equalFoldASCII(first.Key, "Event") { // unusual: Event not first
		var ok bool
		if ev, ok = m.Lookup("Event"); !ok {
			c.log.Warn().Int("headers", len(m.Headers)).Str("first", first.Key).Msg("dropping an AMI message that is neither a response nor an event")
			return
		}
		counters.inc([]byte(ev))
	}
	if s.lists > 0 {
		if id := m.Get("ActionID"); id != "" && c.collect(s, id, m) {
			return
		}
	}
	if c.wanted != nil {
		if _, ok := c.wanted[ev]; !ok {
			return
		}
	}
	if c.cfg.Handler != nil {
		c.cfg.Handler(m)
	}
}

func (c *Client) handleResponse(s *session, m *Message) {
	id := m.Get("ActionID")
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	if p == nil {
		c.log.Debug().Str("action_id", id).Msg("response to no pending action")
		return
	}
	if equalFoldASCII(m.Get("EventList"), "start") {
		p.list = &Response{Message: m.Clone()}
		s.lists++
		return
	}
	delete(s.pending, id)
	if !p.abandoned {
		p.ch <- result{resp: &Response{Message: m.Clone()}}
	}
}

// collect adds an event to the list response it belongs to; false if it belongs to none.
func (c *Client) collect(s *session, id string, m *Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	if p == nil || p.list == nil {
		return false
	}
	switch el := m.Get("EventList"); {
	case equalFoldASCII(el, "Complete"), equalFoldASCII(el, "Cancelled"):
		p.list.Complete = m.Clone()
		delete(s.pending, id)
		s.lists--
		if !p.abandoned {
			p.ch <- result{resp: p.list}
		}
	default:
		if !p.abandoned {
			p.list.Events = append(p.list.Events, m.Clone())
		}
	}
	return true
}

// end fails every pending action with the session's cause.
func (s *session) end(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cause == nil {
		cause = io.EOF
	}
	s.ended = cause
	for id, p := range s.pending {
		if !p.abandoned {
			p.ch <- result{err: fmt.Errorf("%w: %w", ErrDisconnected, cause)}
		}
		delete(s.pending, id)
	}
}

func (s *session) register(id string, p *pending) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended != nil {
		return fmt.Errorf("%w: %w", ErrDisconnected, s.ended)
	}
	if len(s.pending) >= maxPending {
		return ErrTooManyActive
	}
	s.pending[id] = p
	return nil
}

// abandon marks an action whose caller gave up. The entry stays until its response (and
// list) arrives, so that a late list is swallowed rather than handed to Handler.
func (s *session) abandon(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pending[id]; p != nil {
		p.abandoned = true
	}
}

// write sends one serialised action; a failed or partial write ends the session.
func (s *session) write(deadline time.Time, b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(b); err != nil {
		s.conn.Close()
		return err
	}
	return nil
}

func (c *Client) nextID() string {
	return c.idPrefix + "-" + strconv.FormatUint(c.seq.Add(1), 10)
}

// connReader is the session's byte source: it counts bytes and, once the session is live,
// detects a stall: after PingInterval without data it sends a Ping, and if StallTimeout
// then passes without data it fails with ErrStalled. Time spent in Handler does not count.
type connReader struct {
	c      *Client
	s      *session
	live   bool
	pinged bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if !r.live {
		n, err := r.s.conn.Read(p)
		r.c.cfg.Metrics.addBytes(n)
		return n, err
	}
	for {
		wait := r.c.cfg.PingInterval
		if r.pinged {
			wait = r.c.cfg.StallTimeout
		}
		_ = r.s.conn.SetReadDeadline(time.Now().Add(wait))
		n, err := r.s.conn.Read(p)
		timeout := errors.Is(err, os.ErrDeadlineExceeded)
		if n > 0 {
			r.pinged = false
			r.c.cfg.Metrics.addBytes(n)
			if timeout {
				err = nil
			}
			return n, err
		}
		if !timeout {
			return n, err
		}
		if r.pinged {
			return 0, fmt.Errorf("%w: no data for %s after a Ping (%s of silence before it)",
				ErrStalled, r.c.cfg.StallTimeout, r.c.cfg.PingInterval)
		}
		r.pinged = true
		if err := r.c.keepalive(r.s); err != nil {
			return 0, err
		}
	}
}

// keepalive sends a Ping whose response is swallowed: any data proves Asterisk alive.
func (c *Client) keepalive(s *session) error {
	id := c.nextID()
	if err := s.register(id, &pending{action: "Ping", abandoned: true}); err != nil {
		return err
	}
	c.log.Debug().Dur("silence_ms", c.cfg.PingInterval).Msg("no data from Asterisk; sending a keep-alive Ping")
	if err := s.write(time.Now().Add(c.cfg.StallTimeout), appendAction(nil, "Ping", id, nil)); err != nil {
		return fmt.Errorf("ami: sending a keep-alive Ping: %w", err)
	}
	return nil
}
