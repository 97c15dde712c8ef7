// Package ari is a small client of Asterisk's REST Interface (ARI): the /ari/events websocket,
// decoded into typed events, and the few REST calls the daemon needs (Asterisk info, channels,
// channel variables).
//
// The events websocket is kept up for the life of the Client: it reconnects with exponential
// backoff and jitter, detects a stalled connection with pings, bounds every message, and hands
// each event to Config.Handler synchronously, in arrival order, so nothing is dropped and a
// slow consumer pushes back on the socket. The package ari/aritest provides a fake Asterisk
// for tests.
package ari

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/backoff"
	"github.com/omlcrm/oml-crm/internal/rawsock"
	"github.com/omlcrm/oml-crm/internal/sockbuf"
)

// Client is a connection to one Asterisk's ARI. Its methods are safe for concurrent use.
type Client struct {
	cfg     Config
	log     zerolog.Logger
	base    *url.URL
	http    *http.Client
	ownHTTP bool
	metrics *Metrics
	// wanted is the set of Config.EventTypes; nil delivers every type.
	wanted map[string]struct{}
	// filter skips undecoded what Config.EventTypes and Config.AcceptVariable leave out.
	filter *EventFilter

	cancel context.CancelFunc
	done   chan struct{}

	// filterRefused: a refusal of the server-side event filter was logged (each kind of
	// refusal would repeat at every reconnect: logged once until a filter is set).
	filterRefused atomic.Bool

	mu        sync.Mutex
	connected bool
	lastErr   error
	changed   chan struct{} // closed and replaced on every state change
	closed    bool
}

// Dial validates cfg and starts the events loop, which connects in the background and
// reconnects until ctx ends or Close is called. Dial does not wait for the connection: use
// WaitConnected, or OnState. It fails only on an invalid Config.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, err := cfg.baseURL()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "ari").Str("app", cfg.App).Logger(),
		base:    base,
		http:    cfg.HTTPClient,
		metrics: cfg.Metrics,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if cfg.EventTypes != nil {
		c.wanted = make(map[string]struct{}, len(cfg.EventTypes))
		for _, t := range cfg.EventTypes {
			c.wanted[t] = struct{}{}
		}
	}
	c.filter = NewEventFilter(cfg.EventTypes, cfg.AcceptVariable)
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 8
		tr.DialContext = c.dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
		c.http = &http.Client{Transport: tr}
		c.ownHTTP = true
	}
	loopCtx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go c.run(loopCtx)
	return c, nil
}

// dialer dials with d, applies Config.ReceiveBuffer to the connection and reads it with
// raw system calls (internal/rawsock: the events websocket's reads no longer wake the
// runtime's sysmon on every burst).
func (c *Client) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sockbuf.Apply(conn, c.cfg.ReceiveBuffer, c.log) // 0: the kernel's autotuning, untouched
		return rawsock.Wrap(conn), nil
	}
}

// Close stops the events loop and waits for it (and for a running Handler call) to end.
// It must not be called from Handler or OnState.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	if c.ownHTTP {
		c.http.CloseIdleConnections()
	}
	return nil
}

// Connected reports whether the events websocket is up now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// WaitConnected blocks until the events websocket is up. It fails when ctx ends (the error
// then wraps the last connection error, e.g. ErrUnauthorized) or the client is closed.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		up, closed, ch, last := c.connected, c.closed, c.changed, c.lastErr
		c.mu.Unlock()
		switch {
		case up:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-c.done:
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if !closed {
				// The loop ended because the Dial context ended.
				return fmt.Errorf("%w (the Dial context ended)", ErrClosed)
			}
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("ari: waiting for the events websocket: %w (last attempt: %w)", ctx.Err(), last)
			}
			return fmt.Errorf("ari: waiting for the events websocket: %w", ctx.Err())
		}
	}
}

func (c *Client) setState(up bool, err error) {
	c.mu.Lock()
	changed := c.connected != up
	c.connected = up
	if err != nil {
		c.lastErr = err
	}
	if changed || err != nil {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	c.metrics.setConnected(up)
	if c.cfg.OnState != nil {
		if up {
			c.cfg.OnState(StateConnected, nil)
		} else {
			c.cfg.OnState(StateDisconnected, err)
		}
	}
}

// failedLogEvery spaces the failed connects logged above debug level.
const failedLogEvery = 30 * time.Second

// run owns the events loop: connect, read until the connection fails, wait, repeat.
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	retry := backoff.New(backoff.Policy{Min: c.cfg.MinBackoff, Max: c.cfg.MaxBackoff})
	var buf bytes.Buffer
	var logged time.Time // last failed connect logged above debug level
	for {
		start := time.Now()
		wasUp, err := c.session(ctx, &buf)
		if ctx.Err() != nil {
			if wasUp {
				c.setState(false, ErrClosed)
			}
			return
		}
		if wasUp && time.Since(start) >= c.cfg.MaxBackoff {
			retry.Reset() // a long healthy session: retry quickly
		}
		wait := retry.Next()
		c.setState(false, err)
		if wasUp {
			logged = time.Time{}
			c.log.Warn().Err(err).Dur("connected_for_ms", time.Since(start)).Dur("retry_in_ms", wait).Msg("ARI events websocket lost; reconnecting")
		} else {
			// Retries come every second at most: during an outage log the first failure
			// and then one every failedLogEvery, the others at debug level.
			ev := c.log.Debug()
			if now := time.Now(); logged.IsZero() || now.Sub(logged) >= failedLogEvery {
				ev, logged = c.log.Warn(), now
				if errors.Is(err, ErrUnauthorized) {
					ev = c.log.Error() // a configuration problem: say it loudly
				}
			}
			ev.Err(err).Dur("retry_in_ms", wait).Msg("ARI events websocket connect failed")
		}
		c.metrics.reconnect()
		if !sleep(ctx, wait) {
			return
		}
	}
}

// sleep waits d, or less if ctx ends first (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// eventsURL is the websocket URL; safe is the same without the api_key, for logs.
func (c *Client) eventsURL() (full, safe string) {
	u := *c.base
	u.Path += "/events"
	q := url.Values{}
	q.Set("app", c.cfg.App)
	if c.cfg.SubscribeAll {
		q.Set("subscribeAll", "true")
	}
	u.RawQuery = q.Encode()
	safe = u.String()
	if c.cfg.Username == "" {
		q.Set("api_key", c.cfg.APIKey)
		u.RawQuery = q.Encode()
	}
	return u.String(), safe
}

// activity is shared by the reader and the keepalive goroutine of one session.
type activity struct {
	last     atomic.Int64 // unix nanos of the last message or pong
	messages atomic.Uint64
	busy     atomic.Bool // Handler is running: the reader is not reading, by design
	stalled  atomic.Bool
}

// session dials, then reads until the connection fails. wasUp tells whether it connected.
func (c *Client) session(ctx context.Context, buf *bytes.Buffer) (wasUp bool, err error) {
	full, safe := c.eventsURL()
	act := &activity{}
	header := http.Header{}
	if c.cfg.Username != "" {
		header.Set("Authorization", basicAuth(c.cfg.Username, c.cfg.Password))
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	conn, resp, err := websocket.Dial(dctx, full, &websocket.DialOptions{
		HTTPClient:      c.http,
		HTTPHeader:      header,
		CompressionMode: websocket.CompressionDisabled,
		OnPongReceived: func(context.Context, []byte) {
			act.last.Store(time.Now().UnixNano())
		},
	})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return false, httpErrorFrom(resp, "GET", eventsPath(safe))
		}
		return false, fmt.Errorf("ari: connecting to %s: %w", safe, scrubURLError(err))
	}
	conn.SetReadLimit(int64(c.cfg.MaxMessage))
	c.log.Info().Str("url", safe).Msg("ARI events websocket connected")
	c.setState(true, nil)

	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.keepalive(sctx, conn, act)
	}()
	if c.cfg.ServerFilter && len(c.cfg.EventTypes) > 0 {
		// Beside the reader: the reply may take a while, events flow meanwhile.
		wg.Go(func() { c.sendEventFilter(sctx) })
	}
	err = c.read(sctx, conn, act, buf)
	stop()
	conn.CloseNow()
	wg.Wait()
	if act.stalled.Load() {
		err = fmt.Errorf("%w: no reply to a ping within %s", ErrStalled, c.cfg.StallTimeout)
	}
	return true, err
}

// read delivers messages until the connection fails. Only an oversize message or a
// transport error ends it; a message that does not decode is logged and skipped.
func (c *Client) read(ctx context.Context, conn *websocket.Conn, act *activity, buf *bytes.Buffer) error {
	for {
		typ, r, err := conn.Reader(ctx)
		if err != nil {
			return fmt.Errorf("ari: reading events: %w", err)
		}
		if buf.Cap() > 256<<10 && buf.Len() < 64<<10 {
			*buf = bytes.Buffer{} // let a buffer grown by one large message go
		}
		buf.Reset()
		n, err := buf.ReadFrom(r)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.metrics.oversizeMessage()
				c.log.Error().Int64("read_bytes", n).Int("max_message", c.cfg.MaxMessage).
					Msg("ARI event message over the size limit (MaxMessage); resetting the connection")
				return fmt.Errorf("ari: protocol error: event message larger than %d bytes (MaxMessage)", c.cfg.MaxMessage)
			}
			return fmt.Errorf("ari: reading events: %w", err)
		}
		act.last.Store(time.Now().UnixNano())
		act.messages.Add(1)
		data := buf.Bytes()
		if typ != websocket.MessageText {
			c.metrics.malformedEvent(len(data))
			c.log.Warn().Int("bytes", len(data)).Msg("ARI sent a binary websocket message; skipped")
			continue
		}
		// The skip path: no decode and no allocation. The syntax check runs only for an event
		// about to be skipped, so invalid JSON is still decoded and reported below.
		ev, skipped, err := c.filter.Decode(data)
		if skipped != nil {
			c.metrics.skippedEvent(skipped, len(data))
			continue
		}
		if err != nil {
			c.metrics.malformedEvent(len(data))
			c.log.Warn().Err(err).Int("bytes", len(data)).Str("sample", sample(data)).Msg("ARI event not decoded; skipped")
			continue
		}
		if c.wanted != nil {
			if _, ok := c.wanted[ev.EventType()]; !ok { // the scan was unsure
				c.metrics.skippedEvent([]byte(ev.EventType()), len(data))
				continue
			}
		}
		c.metrics.event(ev.EventType(), len(data))
		if c.cfg.Handler != nil {
			act.busy.Store(true)
			c.cfg.Handler(ev)
			act.busy.Store(false)
		}
	}
}

// sendEventFilter asks Asterisk for Config.EventTypes only (Config.ServerFilter) and logs
// the outcome. Asterisk keeps the filter on the application, not the websocket; it is
// sent after every connect all the same, since the application may have been destroyed
// (and its filter with it) while no websocket held it. A failure that may pass (no reply,
// a 5xx, the application not registered yet) is retried with backoff for as long as the
// session lasts; a refusal (403: read_only user; 400; 404 Resource not found: an Asterisk
// older than 16.3) is not.
func (c *Client) sendEventFilter(ctx context.Context) {
	retry := backoff.New(backoff.Policy{Min: c.cfg.MinBackoff * 5, Max: 30 * time.Second})
	for {
		app, err := c.SetEventFilter(ctx, c.cfg.EventTypes)
		if ctx.Err() != nil {
			return // the session ended: whatever happened to the request does not matter
		}
		if err == nil {
			c.eventFilterSet(app, retry.Failures())
			return
		}
		if level, why := filterRefusal(err); why != "" {
			if !c.filterRefused.Swap(true) {
				c.log.WithLevel(level).Err(err).Strs("types", c.cfg.EventTypes).
					Msg(why + ": every event crosses the websocket and is filtered here")
			}
			return
		}
		wait := retry.Next()
		// The first failure may be the session ending under the request: quiet until a
		// second one shows the session alive and the filter still missing.
		ev := c.log.Debug()
		if retry.Failures() == 2 {
			ev = c.log.Warn()
		}
		ev.Err(err).Dur("retry_in_ms", wait).Msg("setting the ARI event filter failed; every event crosses the websocket and is filtered here meanwhile")
		if !sleep(ctx, wait) {
			return
		}
	}
}

// filterRefusal tells a refusal of the event filter, which asking again would not change,
// and how loudly to log it; why is "" for a failure that may pass.
func filterRefusal(err error) (zerolog.Level, string) {
	var he *HTTPError
	switch {
	case errors.Is(err, ErrForbidden):
		return zerolog.InfoLevel, "Asterisk refused the ARI event filter (the ari.conf user is read_only; docs/omnileads.md)"
	case errors.As(err, &he) && he.Status == http.StatusNotFound && he.Message == msgResourceNotFound:
		return zerolog.WarnLevel, "Asterisk does not take the ARI event filter (eventFilter needs Asterisk 16.3 or later)"
	case errors.Is(err, ErrBadRequest):
		return zerolog.ErrorLevel, "Asterisk rejected the ARI event filter as invalid"
	}
	return zerolog.NoLevel, ""
}

// eventFilterSet logs Asterisk's reply to the event filter: the allowed list it now holds
// must be ours.
func (c *Client) eventFilterSet(app *Application, failures int) {
	same := len(app.EventsAllowed) == len(c.cfg.EventTypes) && len(app.EventsDisallowed) == 0
	for i := 0; same && i < len(app.EventsAllowed); i++ {
		same = app.EventsAllowed[i].Type == c.cfg.EventTypes[i]
	}
	if !same {
		c.log.Warn().Any("events_allowed", app.EventsAllowed).Any("events_disallowed", app.EventsDisallowed).Strs("types", c.cfg.EventTypes).
			Msg("Asterisk answered the ARI event filter with other lists; events are still filtered here")
		return
	}
	ev := c.log.Debug()
	if c.filterRefused.Swap(false) || failures >= 2 {
		ev = c.log.Info() // after a logged refusal or failure: say it is in force now
	}
	ev.Strs("types", c.cfg.EventTypes).Int("failed_attempts", failures).Msg("ARI event filter set: Asterisk sends only these event types")
}

// keepalive pings a silent connection and closes it when the ping goes unanswered while the
// reader is waiting for data (a stall). A ping that times out while Handler runs proves
// nothing: the pong is simply not read yet.
func (c *Client) keepalive(ctx context.Context, conn *websocket.Conn, act *activity) {
	act.last.Store(time.Now().UnixNano())
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if act.busy.Load() || time.Since(time.Unix(0, act.last.Load())) < c.cfg.PingInterval {
			continue
		}
		seen := act.messages.Load()
		pctx, cancel := context.WithTimeout(ctx, c.cfg.StallTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			continue
		}
		if act.busy.Load() || act.messages.Load() != seen {
			continue
		}
		act.stalled.Store(true)
		c.log.Error().Dur("stall_timeout_ms", c.cfg.StallTimeout).Msg("ARI events websocket stalled (ping unanswered); reconnecting")
		conn.CloseNow()
		return
	}
}

// sample is the start of a bad message for the log, bounded.
func sample(b []byte) string {
	const max = 256
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// scrubURLError drops the request URL (which may hold an api_key) from HTTP client errors.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func eventsPath(safe string) string {
	if u, err := url.Parse(safe); err == nil {
		return u.RequestURI()
	}
	return "/ari/events"
}
