// Package config is oml-crm's one typed configuration: defaults, a YAML file, OMLCRM_*
// environment variables and command-line flags, in increasing precedence (flags win).
//
// Every key is documented on its field below as `key (default)`. The environment name of a
// key is OMLCRM_ followed by the key upper-cased with dots replaced by underscores:
// asterisk.ami.secret → OMLCRM_ASTERISK_AMI_SECRET. Lists in the environment are
// comma-separated. delivery.sites (a map) can only be set in the file.
//
// Secrets are typed (catalog.Secret, SecretURL) so that printing a Config with %v, %+v,
// %#v or encoding/json never shows them, and Validate never quotes them.
package config

import (
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// Config is the whole configuration of the daemon and its subcommands.
type Config struct {
	Log      Log      `mapstructure:"log" json:"log"`
	HTTP     HTTP     `mapstructure:"http" json:"http"`
	Asterisk Asterisk `mapstructure:"asterisk" json:"asterisk"`
	Calls    Calls    `mapstructure:"calls" json:"calls"`
	Catalog  Catalog  `mapstructure:"catalog" json:"catalog"`
	Database Database `mapstructure:"database" json:"database"`
	Delivery Delivery `mapstructure:"delivery" json:"delivery"`
	AgentWS  AgentWS  `mapstructure:"agentws" json:"agentws"`
	Cluster  Cluster  `mapstructure:"cluster" json:"cluster"`
	Phases   Phases   `mapstructure:"phases" json:"phases"`
}

// Log configures logging.
type Log struct {
	// Level is log.level (info): trace, debug, info, warn, error, fatal, panic or disabled.
	Level string `mapstructure:"level" json:"level"`
	// Format is log.format (auto): json, console, or auto (console on a terminal, else json).
	Format string `mapstructure:"format" json:"format"`
}

// HTTP configures the daemon's HTTP server (agent websocket, oml-crm.js, metrics, health).
type HTTP struct {
	// Listen is http.listen (127.0.0.1:8090): host:port to listen on.
	Listen string `mapstructure:"listen" json:"listen"`
	// TLSCert is http.tls_cert (""): PEM certificate file; set together with http.tls_key to serve HTTPS.
	TLSCert string `mapstructure:"tls_cert" json:"tls_cert"`
	// TLSKey is http.tls_key (""): PEM private key file for http.tls_cert.
	TLSKey string `mapstructure:"tls_key" json:"tls_key"`
	// ShutdownTimeout is http.shutdown_timeout (15s): how long a graceful shutdown waits for
	// open connections before closing them.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" json:"shutdown_timeout"`
	// MaxConnections is http.max_connections (0 = derived): the most connections open at
	// once. 0 derives it from the file-descriptor limit (RLIMIT_NOFILE minus a reserve of
	// a quarter, at least 256, for deliveries, databases and Redis; at most 10000); a
	// larger value is lowered to that at start, with a warning.
	MaxConnections int `mapstructure:"max_connections" json:"max_connections"`
	// MaxConnectionsPerClient is http.max_connections_per_client (0 = half of
	// http.max_connections): the most connections open at once from one client address
	// (behind a trusted proxy: requests in progress, agent websockets included, per
	// X-Forwarded-For client).
	MaxConnectionsPerClient int `mapstructure:"max_connections_per_client" json:"max_connections_per_client"`
	// TrustedProxies is http.trusted_proxies ([]): addresses or CIDR prefixes of reverse
	// proxies (OMniLeads' nginx) whose X-Forwarded-For names the client; connections from
	// them are exempt from the per-address cap.
	TrustedProxies []string `mapstructure:"trusted_proxies" json:"trusted_proxies"`
	// ReadHeaderTimeout is http.read_header_timeout (5s): how long a client may take to
	// send a request's headers.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout" json:"read_header_timeout"`
	// ReadTimeout is http.read_timeout (30s): how long a client may take to send a whole
	// request (not applied to an agent websocket once upgraded).
	ReadTimeout time.Duration `mapstructure:"read_timeout" json:"read_timeout"`
	// WriteTimeout is http.write_timeout (30s): how long an answer may take to be written
	// (not applied to an agent websocket once upgraded).
	WriteTimeout time.Duration `mapstructure:"write_timeout" json:"write_timeout"`
	// IdleTimeout is http.idle_timeout (60s): a keep-alive connection idle this long is closed.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" json:"idle_timeout"`
	// MaxHeaderBytes is http.max_header_bytes (8KiB): the largest request header block
	// (net/http allows 4 KiB more before answering 431).
	MaxHeaderBytes ByteSize `mapstructure:"max_header_bytes" json:"max_header_bytes"`
}

// Asterisk selects and configures the event source.
type Asterisk struct {
	// Source is asterisk.source (ami): where call events come from, ami or ari.
	Source string `mapstructure:"source" json:"source"`
	AMI    AMI    `mapstructure:"ami" json:"ami"`
	ARI    ARI    `mapstructure:"ari" json:"ari"`
	// ReceiveBuffer is asterisk.receive_buffer (4MiB): the TCP receive buffer of the
	// connections to Asterisk (the AMI session, ARI's events websocket and REST). Asterisk
	// writes each event on its own, and with the kernel's small autotuned buffer a burst
	// stalled the stream for 200 ms (internal/sockbuf). 0 leaves the kernel's autotuning;
	// the kernel caps it at net.core.rmem_max (a warning says so).
	ReceiveBuffer ByteSize `mapstructure:"receive_buffer" json:"receive_buffer"`
}

// AMI configures the Asterisk Manager Interface connection (asterisk.source=ami).
type AMI struct {
	// Address is asterisk.ami.address (127.0.0.1:5038): host:port of the manager interface.
	Address string `mapstructure:"address" json:"address"`
	// Username is asterisk.ami.username (omlcrm): the manager.conf user. It needs its own
	// section without OMniLeads' eventfilter lines, which suppress the call events.
	Username string `mapstructure:"username" json:"username"`
	// Secret is asterisk.ami.secret (""): that user's secret. Required with source=ami.
	Secret catalog.Secret `mapstructure:"secret" json:"secret"`
	// Auth is asterisk.ami.auth (plain): plain (Login with Secret) or md5 (Challenge/Key).
	Auth string `mapstructure:"auth" json:"auth"`
	// TLS is asterisk.ami.tls (false): connect with TLS (manager.conf tlsenable).
	TLS bool `mapstructure:"tls" json:"tls"`
	// TLSCA is asterisk.ami.tls_ca (""): a PEM file of the CA (or the self-signed
	// certificate, e.g. made by Asterisk's ast_tls_cert) to trust for Asterisk's
	// certificate instead of the system roots.
	TLSCA string `mapstructure:"tls_ca" json:"tls_ca"`
	// TLSServerName is asterisk.ami.tls_server_name (""): the name Asterisk's certificate
	// must carry; empty = the host of asterisk.ami.address.
	TLSServerName string `mapstructure:"tls_server_name" json:"tls_server_name"`
	// TLSInsecureSkipVerify is asterisk.ami.tls_insecure_skip_verify (false): accept any
	// certificate (labs only: the AMI secret is then open to a man in the middle; use
	// tls_ca instead). Logged as a warning at start.
	TLSInsecureSkipVerify bool `mapstructure:"tls_insecure_skip_verify" json:"tls_insecure_skip_verify"`
	// Events is asterisk.ami.events (DefaultAMIEvents): the event names to receive; the
	// client drops other events before parsing them, and (ServerFilter) asks Asterisk not
	// to send them.
	Events []string `mapstructure:"events" json:"events"`
	// ServerFilter is asterisk.ami.server_filter (true): after each login, send Asterisk
	// one Filter rule (ami.EventFilterRule) that keeps only Events and the VarSets the
	// call tracker reads, so the rest never crosses the socket. Asterisk allows Filter
	// only to a manager user with write = system; a refusal is logged once (info) and
	// the client goes on filtering on its side.
	ServerFilter bool `mapstructure:"server_filter" json:"server_filter"`
	// Filters is asterisk.ami.filters ([]): extra server-side Filter rules sent after login,
	// in manager.conf eventfilter syntax (e.g. "!Event: RTCP*").
	Filters []string `mapstructure:"filters" json:"filters"`
	// ActionTimeout is asterisk.ami.action_timeout (5s): how long an action waits for its response.
	ActionTimeout time.Duration `mapstructure:"action_timeout" json:"action_timeout"`
	// PingInterval is asterisk.ami.ping_interval (20s): keep-alive Ping period; a missed
	// reply forces a reconnect.
	PingInterval time.Duration `mapstructure:"ping_interval" json:"ping_interval"`
	// MaxLine is asterisk.ami.max_line (64KiB): the longest AMI line. A message
	// with a longer line, or over max_message, is skipped whole without losing the
	// session when the call tracker does not need it (another event, a VarSet of a
	// variable it does not read); otherwise the session is re-established and resynced.
	MaxLine ByteSize `mapstructure:"max_line" json:"max_line"`
	// MaxMessage is asterisk.ami.max_message (1MiB): the largest AMI message.
	MaxMessage ByteSize `mapstructure:"max_message" json:"max_message"`
}

// DefaultAMIEvents are the AMI events the call tracker consumes (calls.AMIEvents;
// TestAMIEventsCoverAdapter holds the two equal). Each other name would only cost the
// wire, a read and a parse: Newstate, DialBegin and the queue events were 13.6 % of
// the events the load test made the daemon read.
var DefaultAMIEvents = []string{
	"Newchannel", "VarSet", "DialEnd", "AgentCalled", "AgentConnect",
	"BridgeEnter", "BridgeLeave", "Hangup",
}

// ARI configures the Asterisk REST Interface connection (asterisk.source=ari).
type ARI struct {
	// URL is asterisk.ari.url (http://127.0.0.1:8088): the Asterisk HTTP server (http or https).
	URL string `mapstructure:"url" json:"url"`
	// Username is asterisk.ari.username (""): the ari.conf user. Required with source=ari.
	Username string `mapstructure:"username" json:"username"`
	// Password is asterisk.ari.password (""): that user's password. Required with source=ari.
	Password catalog.Secret `mapstructure:"password" json:"password"`
	// App is asterisk.ari.app (omlcrm): the Stasis application name subscribed to.
	App string `mapstructure:"app" json:"app"`
	// RequestTimeout is asterisk.ari.request_timeout (5s): timeout of each REST call.
	RequestTimeout time.Duration `mapstructure:"request_timeout" json:"request_timeout"`
	// ServerFilter is asterisk.ari.server_filter (true): after each events websocket
	// connect, ask Asterisk (PUT /applications/{app}/eventFilter) to send the application
	// only the event types the call tracker reads, so the rest (ChannelDialplan, device
	// states, …, a third of a busy stream) never crosses the websocket. Asterisk allows
	// it only to an ari.conf user with read_only = no; a refusal is logged once (info) and
	// the client goes on filtering on its side.
	ServerFilter bool `mapstructure:"server_filter" json:"server_filter"`
}

// Calls configures the call tracker.
type Calls struct {
	// DialplanPrefixes is calls.dialplan_prefixes ([Omlcrm]): channel variables whose name
	// starts with one of these (case-insensitively) are collected as dialplan data.
	DialplanPrefixes []string `mapstructure:"dialplan_prefixes" json:"dialplan_prefixes"`
	// MaxChannels is calls.max_channels (50000): bound on tracked channels; beyond it the
	// oldest are evicted (and counted in a metric) rather than growing without limit.
	MaxChannels int `mapstructure:"max_channels" json:"max_channels"`
	// LazyVarTimeout is calls.lazy_var_timeout (500ms): how long to wait for a channel
	// variable fetched on demand (Getvar / ARI variable) at connect time.
	LazyVarTimeout time.Duration `mapstructure:"lazy_var_timeout" json:"lazy_var_timeout"`
}

// Catalog selects where campaigns, sites, contacts and agents are read from.
type Catalog struct {
	// Source is catalog.source (omldb): omldb (the OMniLeads PostgreSQL database at
	// database.url) or file (the YAML catalog at catalog.file).
	Source string `mapstructure:"source" json:"source"`
	// File is catalog.file (""): path of the YAML catalog; required with source=file.
	File string `mapstructure:"file" json:"file"`
	// CacheTTL is catalog.cache_ttl (10s): how long campaign, site, parameter, contact
	// database and agent reads are cached; a campaign edited in OMniLeads takes effect
	// within this time.
	CacheTTL time.Duration `mapstructure:"cache_ttl" json:"cache_ttl"`
	// JSONIDsAsNumbersSites is catalog.json_ids_as_numbers_sites ([]): ids of OMniLeads
	// external sites (source=omldb) whose JSON bodies carry the campaign id, agent_id and
	// id_contacto as JSON numbers. OMniLeads sends them as strings, so every other site
	// gets strings. File catalogs set the site key json_ids_as_numbers instead.
	JSONIDsAsNumbersSites []int `mapstructure:"json_ids_as_numbers_sites" json:"json_ids_as_numbers_sites"`
}

// Database is the OMniLeads PostgreSQL database.
type Database struct {
	// URL is database.url (postgres://omlcrm@127.0.0.1:5432/omnileads?sslmode=disable):
	// the OMniLeads database (read-only use). Its password never prints.
	URL SecretURL `mapstructure:"url" json:"url"`
}

// Delivery configures the durable server-trigger delivery queue.
type Delivery struct {
	// Store is delivery.store (sqlite): sqlite (single node) or postgres (several instances).
	Store string `mapstructure:"store" json:"store"`
	// SQLitePath is delivery.sqlite_path (/var/lib/oml-crm/deliveries.db).
	SQLitePath string `mapstructure:"sqlite_path" json:"sqlite_path"`
	// PostgresURL is delivery.postgres_url (database.url): the queue database with
	// store=postgres. Load fills it with database.url when empty.
	PostgresURL SecretURL `mapstructure:"postgres_url" json:"postgres_url"`
	// PostgresSchema is delivery.postgres_schema (oml_crm): the schema holding the queue tables.
	PostgresSchema string `mapstructure:"postgres_schema" json:"postgres_schema"`
	// Timeout is delivery.timeout (10s): per-attempt HTTP timeout.
	Timeout time.Duration `mapstructure:"timeout" json:"timeout"`
	// MaxAge is delivery.max_age (24h): retries stop and the delivery is dead-lettered after this.
	MaxAge time.Duration `mapstructure:"max_age" json:"max_age"`
	// Workers is delivery.workers (1000): concurrent delivery attempts, all sites
	// together (each site at most delivery.max_in_flight_per_site). Each waiting attempt
	// holds a goroutine and, while the CRM answers, a connection.
	Workers int `mapstructure:"workers" json:"workers"`
	// MaxInFlightPerSite is delivery.max_in_flight_per_site (8): the most attempts
	// running at once to one site, so that a CRM back from an outage is not hit by
	// delivery.workers requests at once; other sites proceed meanwhile.
	MaxInFlightPerSite int `mapstructure:"max_in_flight_per_site" json:"max_in_flight_per_site"`
	// SQLiteSynchronous is delivery.sqlite_synchronous (normal): normal or full. With
	// normal a committed delivery survives kill -9 and any crash of the process; full
	// also survives an OS crash or power cut, at the cost of an fsync per commit (slower).
	SQLiteSynchronous string `mapstructure:"sqlite_synchronous" json:"sqlite_synchronous"`
	// InstanceID is delivery.instance_id ("" = the host name): names this instance in
	// the outbox's claim (lease) columns. It must be stable across restarts (a restarted
	// instance takes back at once what it held when killed) and distinct per instance:
	// set it when several instances on one host share delivery.store=postgres.
	InstanceID string `mapstructure:"instance_id" json:"instance_id"`
	// PollInterval is delivery.poll_interval (1s): how often the outbox is swept for due
	// retries, deliveries left by a crashed instance and deliveries put back by
	// `oml-crm deliveries retry`.
	PollInterval time.Duration `mapstructure:"poll_interval" json:"poll_interval"`
	// MinBackoff is delivery.min_backoff (1s): the delay after the first failed attempt;
	// it doubles per attempt up to delivery.max_backoff, jittered to half–all of it.
	MinBackoff time.Duration `mapstructure:"min_backoff" json:"min_backoff"`
	// MaxBackoff is delivery.max_backoff (10m): the longest delay between two attempts
	// (a CRM's longer Retry-After is still honoured).
	MaxBackoff time.Duration `mapstructure:"max_backoff" json:"max_backoff"`
	// Retention is delivery.retention (720h): how long delivered and dead deliveries
	// stay in the outbox (for `oml-crm deliveries`) before they are pruned.
	Retention time.Duration `mapstructure:"retention" json:"retention"`
	// ConnectTimeout is delivery.connect_timeout (5s): TCP connect timeout of an attempt,
	// login or notification; the whole attempt is still bounded by delivery.timeout, so
	// the effective value is the smaller of the two.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout" json:"connect_timeout"`
	// Sites is delivery.sites ({}): per-site settings keyed by the site id
	// (delivery.sites.<id>.signing_secret). File only.
	Sites map[string]DeliverySite `mapstructure:"sites" json:"sites"`
}

// DeliverySite holds the per-site delivery settings.
type DeliverySite struct {
	// SigningSecret is delivery.sites.<id>.signing_secret (""): when set (≥16 bytes), each
	// delivery to the site carries an HMAC-SHA256 signature over timestamp and body.
	SigningSecret catalog.Secret `mapstructure:"signing_secret" json:"signing_secret"`
	// WebhookSecrets is delivery.sites.<id>.webhook_secrets ([]): Standard Webhooks
	// secrets ("whsec_" + base64 of 24–64 random bytes). Each delivery to the site carries
	// webhook-signature with one "v1,<base64 HMAC-SHA256>" per secret (two during a key
	// rotation). Override the file catalog site's webhook_secrets.
	WebhookSecrets []catalog.Secret `mapstructure:"webhook_secrets" json:"webhook_secrets"`
	// CallEnd is delivery.sites.<id>.call_end (off): end-of-call notifications to the
	// site (OMniLeads catalog; the file catalog has its own site key): off, answered
	// (calls an agent answered) or all (abandoned and unanswered calls too).
	CallEnd string `mapstructure:"call_end" json:"call_end"`
}

// AgentWS configures the agent websocket.
type AgentWS struct {
	// Auth is agentws.auth (token): token (HMAC-signed agent id + expiry) or django-session
	// (the OMniLeads session cookie looked up in database.url).
	Auth string `mapstructure:"auth" json:"auth"`
	// TokenSecret is agentws.token_secret (""): HMAC key of agent tokens; required (≥16
	// bytes) with auth=token.
	TokenSecret catalog.Secret `mapstructure:"token_secret" json:"token_secret"`
	// TokenMaxTTL is agentws.token_max_ttl (24h): the longest lifetime of an agent token.
	// `oml-crm token --ttl` refuses more and /ws refuses a token expiring later than this
	// from now (a leaked token stays usable at most this long).
	TokenMaxTTL time.Duration `mapstructure:"token_max_ttl" json:"token_max_ttl"`
	// SessionCookie is agentws.session_cookie (sessionid): the Django session cookie name.
	SessionCookie string `mapstructure:"session_cookie" json:"session_cookie"`
	// DjangoSecretKey is agentws.django_secret_key (""): OMniLeads' Django SECRET_KEY;
	// required with auth=django-session to verify the session data's signature and the
	// session's user hash, as Django does.
	DjangoSecretKey catalog.Secret `mapstructure:"django_secret_key" json:"django_secret_key"`
	// AllowedOrigins is agentws.allowed_origins ([]): Origin values (scheme://host[:port])
	// or host patterns allowed to open the websocket besides the daemon's own host.
	AllowedOrigins []string `mapstructure:"allowed_origins" json:"allowed_origins"`
	// PopTTL is agentws.pop_ttl (2m): how long an unacknowledged pop is replayed to a
	// reconnecting agent.
	PopTTL time.Duration `mapstructure:"pop_ttl" json:"pop_ttl"`
	// SendQueue is agentws.send_queue (64): per-connection outgoing queue; a client that
	// lets it fill is disconnected.
	SendQueue int `mapstructure:"send_queue" json:"send_queue"`
	// MaxFrame is agentws.max_frame (64KiB): largest frame accepted from a client
	// (a byte count or a size such as 64KiB, 1MiB).
	MaxFrame ByteSize `mapstructure:"max_frame" json:"max_frame"`
	// PingInterval is agentws.ping_interval (20s): websocket ping period; a period in
	// which a message went each way needs no ping and is skipped.
	PingInterval time.Duration `mapstructure:"ping_interval" json:"ping_interval"`
	// IdleTimeout is agentws.idle_timeout (60s): a connection silent for this long is
	// closed; must exceed agentws.ping_interval.
	IdleTimeout time.Duration `mapstructure:"idle_timeout" json:"idle_timeout"`
	// FrameProbeInterval is agentws.frame_probe_interval (1h): how often the daemon
	// requests each embedded site (one GET) to learn whether it refuses framing, so pops
	// carry frame_refused; 0 turns probing off.
	FrameProbeInterval time.Duration `mapstructure:"frame_probe_interval" json:"frame_probe_interval"`
}

// Cluster configures multi-instance operation.
type Cluster struct {
	// RedisURL is cluster.redis_url (""): redis://… used to fan pops out across instances;
	// empty = single instance.
	RedisURL SecretURL `mapstructure:"redis_url" json:"redis_url"`
	// RedisPrefix is cluster.redis_prefix (omlcrm:): the prefix of every Redis key and
	// channel the instances share. Instances of one contact center use the same prefix;
	// give another deployment sharing that Redis its own.
	RedisPrefix string `mapstructure:"redis_prefix" json:"redis_prefix"`
}

// DefaultDatabaseURL is the default database.url: the OMniLeads database on this host.
const DefaultDatabaseURL = "postgres://omlcrm@127.0.0.1:5432/omnileads?sslmode=disable"

// Default returns the configuration with every default applied.
func Default() *Config {
	return &Config{
		Log: Log{Level: "info", Format: "auto"},
		HTTP: HTTP{
			Listen: "127.0.0.1:8090", ShutdownTimeout: 15 * time.Second,
			TrustedProxies:    []string{},
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
			MaxHeaderBytes: 8 << 10,
		},
		Asterisk: Asterisk{
			Source: "ami",
			AMI: AMI{
				Address:       "127.0.0.1:5038",
				Username:      "omlcrm",
				Auth:          "plain",
				Events:        append([]string(nil), DefaultAMIEvents...),
				ServerFilter:  true,
				Filters:       []string{},
				ActionTimeout: 5 * time.Second,
				PingInterval:  20 * time.Second,
				MaxLine:       64 << 10,
				MaxMessage:    1 << 20,
			},
			ARI: ARI{
				URL:            "http://127.0.0.1:8088",
				App:            "omlcrm",
				RequestTimeout: 5 * time.Second,
				ServerFilter:   true,
			},
			ReceiveBuffer: 4 << 20,
		},
		Phases: defaultPhases(),
		Calls: Calls{
			DialplanPrefixes: []string{"Omlcrm"},
			MaxChannels:      50000,
			LazyVarTimeout:   500 * time.Millisecond,
		},
		Catalog:  Catalog{Source: "omldb", CacheTTL: 10 * time.Second, JSONIDsAsNumbersSites: []int{}},
		Database: Database{URL: DefaultDatabaseURL},
		Delivery: Delivery{
			Store:              "sqlite",
			SQLitePath:         "/var/lib/oml-crm/deliveries.db",
			PostgresSchema:     "oml_crm",
			Timeout:            10 * time.Second,
			MaxAge:             24 * time.Hour,
			Workers:            1000,
			MaxInFlightPerSite: 8,
			SQLiteSynchronous:  "normal",
			PollInterval:       time.Second,
			MinBackoff:         time.Second,
			MaxBackoff:         10 * time.Minute,
			Retention:          30 * 24 * time.Hour,
			ConnectTimeout:     5 * time.Second,
			Sites:              map[string]DeliverySite{},
		},
		AgentWS: AgentWS{
			Auth:           "token",
			TokenMaxTTL:    24 * time.Hour,
			SessionCookie:  "sessionid",
			AllowedOrigins: []string{},
			PopTTL:         2 * time.Minute,
			SendQueue:      64,
			MaxFrame:       64 << 10,
			PingInterval:   20 * time.Second,
			IdleTimeout:    60 * time.Second,

			FrameProbeInterval: time.Hour,
		},
		Cluster: Cluster{RedisPrefix: "omlcrm:"},
	}
}
