package ari

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by Dial to zero Config fields.
const (
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxMessage     = 1 << 20
	DefaultMaxResponse    = 16 << 20
	DefaultPingInterval   = 5 * time.Second
	DefaultStallTimeout   = 5 * time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	// DefaultMaxBackoff is short so the client is back within a second of Asterisk
	// accepting connections again, however long it was down.
	DefaultMaxBackoff = 800 * time.Millisecond
)

// Config configures a Client. URL, App and credentials are required.
type Config struct {
	// URL is Asterisk's HTTP server, e.g. http://127.0.0.1:8088 (https for TLS). The /ari
	// prefix is added unless the URL already ends with it. Credentials never go in the URL.
	URL string
	// Username and Password are an ari.conf user (HTTP basic auth).
	Username, Password string
	// APIKey ("user:password") is sent as the api_key query parameter instead of basic auth;
	// used only when Username is empty.
	APIKey string
	// App is the Stasis application name the events websocket registers.
	App string
	// SubscribeAll asks Asterisk for every event of the system, not only those of channels in
	// App (subscribeAll=true). The daemon observes dialplan calls, so it sets this.
	SubscribeAll bool
	// EventTypes, when non-nil, are the only event types handed to Handler (exact ARI names:
	// "StasisStart", "Dial", …). The others are skipped before decoding: the client reads the
	// top-level "type" with a scan of the raw JSON and checks its syntax, without allocating,
	// and counts the event in omlcrm_ari_skipped_events_total (and, as received, in
	// omlcrm_ari_events_total). A skipped event's fields are not checked, so a wrongly-kinded
	// field in it is not reported as malformed; invalid JSON still is. When the scan is unsure
	// (escaped keys, odd "type" values) the event is decoded, then filtered. Nil: all events
	// (an empty non-nil list: none).
	EventTypes []string
	// ServerFilter, with EventTypes non-empty, asks Asterisk after each events websocket
	// connect to send App only those types (SetEventFilter; Asterisk checks it as each
	// event leaves for the websocket), so the others never cross it. Events that arrive
	// before the reply are still filtered here. Asterisk refuses it to a read_only
	// ari.conf user (403 Write access denied): that is logged once at info level and the
	// client goes on filtering on its side, as after the other refusals (an Asterisk
	// before 16.3: a warning; a 400: an error). A failure that may pass (no reply, 5xx)
	// is retried with backoff while the websocket lasts.
	ServerFilter bool
	// AcceptVariable, when non-nil, is asked about the variable of each ChannelVarset event
	// (its raw name, "__" prefix included, valid only during the call) before the event is
	// decoded; false skips it like an unwanted type (counted as skipped). Most ChannelVarsets
	// of a real stream set variables a consumer ignores. It runs on the reader goroutine and
	// must be quick.
	AcceptVariable func(name []byte) bool

	// Handler receives every event, in arrival order, synchronously from the reader goroutine:
	// while it runs nothing more is read, so a slow consumer slows the socket (back-pressure)
	// and no event is dropped. It must not call Close. Nil discards events.
	Handler func(ev Event)
	// OnState is told, from the same goroutine as Handler, when the events websocket comes up
	// (StateConnected, nil) and goes down (StateDisconnected, cause; ErrClosed when the client
	// stops). Failed attempts while down are logged, not reported here (WaitConnected returns
	// the last one). After a reconnect the consumer should resynchronise (Channels): events
	// were missed while down.
	OnState func(s State, err error)

	// RequestTimeout bounds each REST request and the websocket handshake (default 5 s).
	RequestTimeout time.Duration
	// MaxMessage is the largest event message accepted (default 1 MiB). A larger one is a
	// protocol error: the connection is reset and re-established.
	MaxMessage int
	// MaxResponse is the largest REST reply body read (default 16 MiB).
	MaxResponse int
	// PingInterval: after this long without any message, a websocket ping is sent (default 5 s).
	PingInterval time.Duration
	// StallTimeout: a ping unanswered this long, with nothing else received, marks the
	// connection stalled and it is re-established (default 5 s).
	StallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay, which doubles per failed attempt
	// with jitter (defaults 100 ms and 800 ms).
	MinBackoff, MaxBackoff time.Duration

	// ReceiveBuffer, when positive, is the TCP receive buffer asked for the connections
	// of the private HTTP client (the events websocket's above all: internal/sockbuf);
	// 0 leaves the kernel's autotuning. Not applied to a caller's HTTPClient.
	ReceiveBuffer int
	// HTTPClient is used for REST and the websocket handshake; nil uses a private client.
	HTTPClient *http.Client
	Logger     zerolog.Logger
	// Metrics records events, bytes, reconnects and REST latency; nil records nothing.
	Metrics *Metrics
}

// State is the events websocket's connection state.
type State int

const (
	// StateDisconnected: the events websocket is down (reconnecting).
	StateDisconnected State = iota
	// StateConnected: the events websocket is up.
	StateConnected
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

func (cfg *Config) withDefaults() Config {
	c := *cfg
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxResponse <= 0 {
		c.MaxResponse = DefaultMaxResponse
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	return c
}

// baseURL validates cfg.URL and returns it with the /ari prefix.
func (cfg *Config) baseURL() (*url.URL, error) {
	if cfg.URL == "" {
		return nil, errors.New("ari: config: URL is required (e.g. http://127.0.0.1:8088)")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ari: config: URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("ari: config: URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("ari: config: URL %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("ari: config: URL must not carry credentials: set Username/Password or APIKey")
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	if !strings.HasSuffix(u.Path, "/ari") {
		u.Path += "/ari"
	}
	u.RawPath = ""
	return u, nil
}

func (cfg *Config) validate() error {
	if cfg.App == "" {
		return errors.New("ari: config: App (the Stasis application name) is required")
	}
	if cfg.Username == "" && cfg.APIKey == "" {
		return errors.New("ari: config: Username/Password or APIKey is required")
	}
	if cfg.Username == "" && !strings.Contains(cfg.APIKey, ":") {
		return errors.New("ari: config: APIKey must be user:password")
	}
	for i, t := range cfg.EventTypes {
		if t == "" || strings.TrimSpace(t) != t {
			return fmt.Errorf("ari: config: EventTypes[%d] = %q is not an ARI event type name", i, t)
		}
	}
	return nil
}
