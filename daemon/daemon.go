package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/buildinfo"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/catalog/omldb"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
	"github.com/omlcrm/oml-crm/crmnotify/framing"
	"github.com/omlcrm/oml-crm/health"
	"github.com/omlcrm/oml-crm/internal/backoff"
	"github.com/omlcrm/oml-crm/internal/lograte"
	"github.com/omlcrm/oml-crm/internal/workpool"
)

// Names of the dependencies /readyz reports.
const (
	depAsterisk      = "asterisk"
	depCatalogDB     = "catalog_db"
	depDeliveryStore = "delivery_store"
	depRedis         = "redis"
)

// Options is what `run` and `demo` hand to Start. Only Config and Logger are
// required; the rest lets the demo plug its own parts into the same composition.
type Options struct {
	Config *config.Config
	Logger zerolog.Logger
	// Version is the program's version: logged at start, sent to the CRM in the
	// User-Agent and to the agent page.
	Version string
	// Levels, when set, holds Logger's level: Reload applies log.level through it.
	Levels *LevelWriter
	// Catalog, when set, is used instead of opening catalog.source (the demo's embedded
	// file catalog). The daemon closes it.
	Catalog catalog.Catalog
	// Listener, when set, is served instead of listening on http.listen.
	Listener net.Listener
	// Routes are extra handlers mounted on the listener (pattern → handler): the demo CRM.
	Routes map[string]http.Handler
	// WrapServer and WrapAgents decorate the sinks the dispatcher hands notifications to
	// (the demo observes them to print one line per call).
	WrapServer func(crmnotify.ServerSink) crmnotify.ServerSink
	WrapAgents func(crmnotify.AgentSink) crmnotify.AgentSink
	// OnConnect is told of every connect and what the dispatcher did with it (nil, a
	// *crmnotify.SkippedError, or a failure), after the hand-off.
	OnConnect func(c calls.Connected, err error)
}

// Daemon is the running pipeline: Asterisk client → calls.Tracker → intake →
// crmnotify.Dispatcher → delivery queue or agent hub, plus the HTTP listener.
type Daemon struct {
	cfg     *config.Config
	version string
	levels  *LevelWriter
	log     zerolog.Logger
	health  *health.Registry
	reg     *prometheus.Registry
	catalog catalog.Catalog
	queue   *queueSlot
	hub     *hubSlot
	tracker *calls.Tracker
	intake  *crmnotify.Intake
	amiC    *ami.Client
	ariC    *ari.Client
	server  *http.Server
	addr    string // the listener's address
	scheme  string // http or https

	sessions *pgxpool.Pool // django-session auth

	// goroutines runs the per-call hand-offs (intake, delivery attempts, agents'
	// messages) on reusable workers; closed last, after everything that hands off.
	goroutines *workpool.Pool

	// catalogTTL is catalog.cache_ttl as running (SIGHUP changes it): the period of the
	// dialplan variable list refresh.
	catalogTTL atomic.Int64

	bg     sync.WaitGroup     // tracker.Run, queue.Run, the outbox and hub openers, the dialplan list refresh
	stopBG context.CancelFunc // ends the background work and the in-flight dispatches
	served chan error         // the HTTP server's end

	routes map[string]http.Handler // handlers the phases add (POST /dispositions), mounted by startHTTP
	disp   *crmnotify.Dispatcher   // SIGHUP: delivery.sites.<id>.call_end
}

// Start builds and starts every part. It fails on what cannot be retried (a bad
// catalog file, a listener that cannot bind, an unusable SQLite path); dependencies that
// may come later (Asterisk, PostgreSQL) are retried in the background and reported by
// /readyz.
func Start(ctx context.Context, o Options) (_ *Daemon, err error) {
	cfg := o.Config
	d := &Daemon{cfg: cfg, version: o.Version, levels: o.Levels, log: o.Logger, served: make(chan error, 1), scheme: "http", routes: map[string]http.Handler{},
		goroutines: workpool.New(0)}
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	d.stopBG = stopBG
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()

	d.reg = prometheus.NewRegistry()
	if err := registerAll(d.reg,
		// Besides the defaults, the goroutines started since start-up: the load test
		// reports them per connect (a hand-off count that, unlike CPU time, does not
		// vary from run to run).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/goroutines-created:goroutines$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Read(d.version).Collector(),
	); err != nil {
		return d, err
	}
	d.health = health.New(health.WithLogger(d.log.With().Str("component", "health").Logger()))
	if err := d.reg.Register(d.health); err != nil {
		return d, fmt.Errorf("registering the health metrics: %w", err)
	}
	d.health.Require(depAsterisk)
	d.health.Require(depDeliveryStore)

	// Catalog.
	d.catalog = o.Catalog
	if d.catalog == nil {
		if d.catalog, err = openConfiguredCatalog(ctx, cfg, d.log, d.reg); err != nil {
			return d, err
		}
	}
	if cfg.Catalog.Source == "omldb" && o.Catalog == nil {
		d.health.Check(depCatalogDB, func(ctx context.Context) error { return catalog.Ping(ctx, d.catalog) })
	}

	// Delivery queue (server trigger).
	qopts, err := deliveryOptions(cfg, d.log, d.reg, d.catalog, d.version)
	if err != nil {
		return d, err
	}
	qopts.Goroutines = d.goroutines
	d.queue = newQueueSlot()
	// Checked on every readiness probe, so that a store that goes away after opening
	// (PostgreSQL down) shows in /readyz.
	d.health.Check(depDeliveryStore, d.queue.ping)
	d.health.Check(depContacts, d.queue.waitingForContacts)
	if cfg.Delivery.Store == "sqlite" {
		// A local file: failing to open it is a configuration or permission problem that
		// retrying will not fix.
		q, err := delivery.Open(ctx, qopts)
		if err != nil {
			return d, err // names the path and delivery.sqlite_path already
		}
		d.queue.set(q)
		d.health.Set(depDeliveryStore, true, "")
	} else {
		d.health.Set(depDeliveryStore, false, "connecting to PostgreSQL")
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.openQueueRetrying(bgCtx, qopts)
		}()
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		if q, err := d.queue.wait(bgCtx); err == nil {
			if err := q.Run(bgCtx); err != nil && bgCtx.Err() == nil {
				d.log.Error().Err(err).Msg("delivery sweeper stopped")
			}
		}
	}()

	// Agent hub. In cluster mode it needs Redis, which may come later.
	hopts, err := d.hubOptions(cfg)
	if err != nil {
		return d, err
	}
	hopts.Goroutines = d.goroutines
	// Which embedded CRMs refuse framing: probed in the background (every site at start,
	// a new site URL at its first pop, each again after agentws.frame_probe_interval), so
	// pops carry frame_refused (crmnotify/framing).
	if every := cfg.AgentWS.FrameProbeInterval; every > 0 {
		frames := framing.NewCache(nil, every, d.log.With().Str("component", "framing").Logger())
		hopts.Framing = frames
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			if cs, err := d.catalog.Campaigns(bgCtx); err == nil {
				frames.Warm(cs)
			}
			frames.Run(bgCtx)
		}()
	}
	d.hub = newHubSlot()
	if hopts.RedisURL == "" {
		h, err := agentws.New(hopts)
		if err != nil {
			return d, fmt.Errorf("agent websocket hub: %w", err)
		}
		d.hub.set(h)
	} else {
		d.health.Set(depRedis, false, "connecting to Redis")
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			d.openHubRetrying(bgCtx, hopts)
		}()
	}

	// Dispatcher and the intake feeding it.
	var server crmnotify.ServerSink = d.queue
	var agents crmnotify.AgentSink = d.hub
	if o.WrapServer != nil {
		server = o.WrapServer(server)
	}
	if o.WrapAgents != nil {
		agents = o.WrapAgents(agents)
	}
	disp, err := crmnotify.NewDispatcher(crmnotify.DispatcherOptions{
		Catalog: d.catalog, Server: server, Agents: agents,
		Logger: d.log.With().Str("component", "dispatcher").Logger(), Registerer: d.reg,
		UpdateFor:    cfg.AgentWS.PopTTL,
		CallEndSites: callEndSites(cfg), RingingCampaigns: ringingCampaigns(cfg),
	})
	if err != nil {
		return d, err
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		disp.Run(bgCtx) // updates pops sent without their contact
	}()
	d.disp = disp
	if err := d.startDispositions(bgCtx, disp); err != nil {
		return d, err
	}
	d.intake = crmnotify.NewIntake(bgCtx, disp, crmnotify.DefaultIntakeWorkers, d.goroutines, o.OnConnect, d.log)

	// Call tracker and the Asterisk client. The dialplan variables to read on demand come
	// from the catalog, which may not answer yet: refreshDialplanVars keeps them current.
	src := &sourceRef{}
	d.catalogTTL.Store(int64(cfg.Catalog.CacheTTL))
	dpVars, dpErr := dialplanSources(ctx, d.catalog)
	if dpErr != nil {
		d.log.Warn().Err(dpErr).Msg("dialplan parameter sources not read yet (the catalog does not answer); retrying every catalog.cache_ttl")
	}
	topts := calls.Options{
		Output:           d.intake,
		Resolver:         extensionResolver{d.catalog},
		DialplanPrefixes: cfg.Calls.DialplanPrefixes,
		DialplanVars:     dpVars,
		MaxChannels:      cfg.Calls.MaxChannels,
		LazyVarTimeout:   cfg.Calls.LazyVarTimeout,
		Logger:           d.log.With().Str("component", "calls").Logger(),
		Registerer:       d.reg,
	}
	switch cfg.Asterisk.Source {
	case "ami":
		topts.VarReader, topts.Lister = calls.AMIVarReader(src), calls.AMILister(src)
	case "ari":
		topts.VarReader, topts.Lister = calls.ARIVarReader(src), calls.ARILister(src)
	default:
		return d, fmt.Errorf("asterisk.source: %q is not one of ami|ari", cfg.Asterisk.Source)
	}
	if d.tracker, err = calls.NewTracker(topts); err != nil {
		return d, err
	}
	d.health.Set(depAsterisk, false, "connecting to "+d.asteriskAddress())
	if err := d.dialAsterisk(bgCtx, src); err != nil {
		return d, err
	}
	// The lazy reads and resyncs use the client: start them once it exists.
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		_ = d.tracker.Run(bgCtx)
	}()
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		d.refreshDialplanVars(bgCtx, dpErr != nil)
	}()

	// HTTP.
	if err := d.startHTTP(o); err != nil {
		return d, err
	}
	d.log.Info().Str("version", d.version).Str("listen", d.addr).Str("asterisk", cfg.Asterisk.Source+" "+d.asteriskAddress()).
		Str("catalog", cfg.Catalog.Source).Str("delivery_store", cfg.Delivery.Store).
		Str("agent_auth", cfg.AgentWS.Auth).Int("max_procs", runtime.GOMAXPROCS(0)).Msg("oml-crm started")
	return d, nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// openConfiguredCatalog opens catalog.source with the daemon's metrics registry.
func openConfiguredCatalog(ctx context.Context, cfg *config.Config, log zerolog.Logger, reg prometheus.Registerer) (catalog.Catalog, error) {
	switch cfg.Catalog.Source {
	case "file":
		c, err := file.Open(cfg.Catalog.File)
		if err != nil {
			return nil, fmt.Errorf("catalog.file: %w", err)
		}
		return c, nil
	case "omldb":
		c, err := omldb.Open(ctx, cfg.Database.URL.Reveal(), omldb.Options{
			CacheTTL: cfg.Catalog.CacheTTL, Registerer: reg,
			JSONIDsAsNumbersSites: cfg.Catalog.JSONIDsAsNumbersSites,
			Logger:                log,
		})
		if err != nil {
			return nil, fmt.Errorf("database.url: %w", err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("catalog.source: %q is not one of omldb|file", cfg.Catalog.Source)
}

func deliveryOptions(cfg *config.Config, log zerolog.Logger, reg prometheus.Registerer, cat catalog.Catalog, version string) (delivery.Options, error) {
	secrets, err := signingSecrets(cfg)
	if err != nil {
		return delivery.Options{}, err
	}
	whsec, err := webhookSecrets(context.Background(), cfg, cat)
	if err != nil {
		return delivery.Options{}, err
	}
	dc := cfg.Delivery
	o := delivery.Options{
		Schema:             dc.PostgresSchema,
		Timeout:            dc.Timeout,
		DialTimeout:        dc.ConnectTimeout,
		MaxAge:             dc.MaxAge,
		Workers:            dc.Workers,
		MaxInFlightPerSite: dc.MaxInFlightPerSite,
		MinBackoff:         dc.MinBackoff,
		MaxBackoff:         dc.MaxBackoff,
		PollInterval:       dc.PollInterval,
		Retention:          dc.Retention,
		InstanceID:         dc.InstanceID,
		SQLiteSynchronous:  dc.SQLiteSynchronous,
		SigningSecrets:     secrets,
		WebhookSecrets:     whsec,
		Sites:              siteLookup(cat),
		Rerender:           rerenderWith(cat),
		UserAgent:          "oml-crm/" + version,
		Logger:             log,
		Registerer:         reg,
	}
	switch cfg.Delivery.Store {
	case "sqlite":
		o.Store = "sqlite:" + cfg.Delivery.SQLitePath
	case "postgres":
		o.Store = cfg.Delivery.PostgresURL.Reveal()
	default:
		return o, fmt.Errorf("delivery.store: %q is not one of sqlite|postgres", cfg.Delivery.Store)
	}
	return o, nil
}

// signingSecrets maps delivery.sites.<id>.signing_secret to the queue's site ids.
func signingSecrets(cfg *config.Config) (map[int]catalog.Secret, error) {
	out := make(map[int]catalog.Secret, len(cfg.Delivery.Sites))
	for k, s := range cfg.Delivery.Sites {
		id, err := strconv.Atoi(k)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("delivery.sites.%s: the key must be a site id (a positive integer)", k)
		}
		out[id] = s.SigningSecret
	}
	return out, nil
}

// siteLookup finds a site by id through the campaigns that use it, for deliveries
// retried after a restart whose site logs in.
func siteLookup(cat catalog.Catalog) func(ctx context.Context, siteID int) (*catalog.Site, error) {
	return func(ctx context.Context, siteID int) (*catalog.Site, error) {
		cs, err := cat.Campaigns(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Site != nil && c.Site.ID == siteID {
				return c.Site, nil
			}
		}
		return nil, fmt.Errorf("site %d: %w", siteID, catalog.ErrNotFound)
	}
}

// openQueueRetrying opens the PostgreSQL outbox, retrying with a capped backoff until
// it opens or ctx ends; connects meanwhile wait in queueSlot.Enqueue.
func (d *Daemon) openQueueRetrying(ctx context.Context, o delivery.Options) {
	retry := backoff.New(backoff.Policy{Min: 500 * time.Millisecond, Max: 10 * time.Second})
	repeats := lograte.New(time.Minute, 8) // the same error every few seconds for as long as it is down
	for {
		q, err := delivery.Open(ctx, o)
		if err == nil {
			d.queue.set(q)
			d.health.Set(depDeliveryStore, true, "")
			return
		}
		d.queue.setOpenError(err)
		d.health.SetError(depDeliveryStore, err)
		pause := retry.Next()
		repeats.Event(d.log.Warn(), err.Error()).Err(err).Dur("retry_in_ms", pause).Msg("delivery store (PostgreSQL) unavailable; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

func (d *Daemon) hubOptions(cfg *config.Config) (agentws.Options, error) {
	ws := cfg.AgentWS
	o := agentws.Options{
		Auth:            agentws.AuthMode(ws.Auth),
		TokenSecret:     []byte(ws.TokenSecret.Reveal()),
		TokenMaxTTL:     ws.TokenMaxTTL,
		SessionCookie:   ws.SessionCookie,
		DjangoSecretKey: ws.DjangoSecretKey.Reveal(),
		AllowedOrigins:  ws.AllowedOrigins,
		PopTTL:          ws.PopTTL,
		SendQueue:       ws.SendQueue,
		MaxFrame:        int64(ws.MaxFrame),
		PingInterval:    ws.PingInterval,
		IdleTimeout:     ws.IdleTimeout,
		RedisURL:        cfg.Cluster.RedisURL.Reveal(),
		RedisPrefix:     cfg.Cluster.RedisPrefix,
		Version:         d.version,
		Logger:          d.log,
		Registerer:      d.reg,
	}
	if o.Auth == agentws.AuthDjangoSession {
		pool, err := pgxpool.New(context.Background(), cfg.Database.URL.Reveal())
		if err != nil {
			return o, fmt.Errorf("database.url (agentws.auth=django-session): %w", err)
		}
		d.sessions = pool
		o.Sessions = agentws.NewPGSessionStore(pool)
	}
	return o, nil
}

func (d *Daemon) asteriskAddress() string {
	if d.cfg.Asterisk.Source == "ari" {
		return d.cfg.Asterisk.ARI.URL
	}
	return d.cfg.Asterisk.AMI.Address
}

// amiFilters are the Filter rules sent after each AMI login: the rule keeping only what
// the tracker reads (asterisk.ami.server_filter) first, then asterisk.ami.filters.
func (d *Daemon) amiFilters() []string {
	cfg := d.cfg.Asterisk.AMI
	var rules []string
	if cfg.ServerFilter {
		if rule, ok := ami.EventFilterRule(cfg.Events, d.tracker.AMIVarSetFilter()); ok {
			rules = append(rules, rule)
		} else {
			d.log.Warn().Strs("events", cfg.Events).Msg("asterisk.ami.server_filter: no exact Filter rule for these event names; Asterisk sends every event")
		}
	}
	return append(rules, cfg.Filters...)
}

// dialAsterisk starts the event source; it connects (and reconnects) in the background.
func (d *Daemon) dialAsterisk(ctx context.Context, src *sourceRef) error {
	cfg := d.cfg.Asterisk
	log := d.log // the clients name themselves (component ami / ari)
	switch cfg.Source {
	case "ami":
		m, err := ami.NewMetrics(d.reg)
		if err != nil {
			return err
		}
		tlsCfg, err := amiTLSConfig(cfg.AMI)
		if err != nil {
			return err
		}
		if tlsCfg != nil && tlsCfg.InsecureSkipVerify {
			d.log.Warn().Msg("asterisk.ami.tls_insecure_skip_verify: Asterisk's certificate is not verified; use asterisk.ami.tls_ca outside a lab")
		}
		c, err := ami.Dial(ctx, ami.Config{
			Address: cfg.AMI.Address, Username: cfg.AMI.Username, Secret: cfg.AMI.Secret.Reveal(),
			AuthMD5: cfg.AMI.Auth == "md5", TLS: tlsCfg,
			Filters:       d.amiFilters(),
			EventNames:    cfg.AMI.Events,
			Accept:        d.tracker.AcceptAMI, // VarSets of ignored variables: dropped before the copy
			Handler:       d.tracker.HandleAMI,
			OnState:       func(s ami.State, err error) { d.sourceState(s == ami.StateConnected, err) },
			ActionTimeout: cfg.AMI.ActionTimeout,
			PingInterval:  cfg.AMI.PingInterval,
			MaxLine:       int(cfg.AMI.MaxLine),
			ReceiveBuffer: int(cfg.ReceiveBuffer),
			MaxMessage:    int(cfg.AMI.MaxMessage),
			SkipOversized: d.tracker.SkipOversizedAMI,
			Logger:        log,
			Metrics:       m,
		})
		if err != nil {
			return fmt.Errorf("asterisk.ami: %w", err)
		}
		d.amiC, src.ami = c, c
	case "ari":
		m, err := ari.NewMetrics(d.reg)
		if err != nil {
			return err
		}
		c, err := ari.Dial(ctx, ari.Config{
			URL: cfg.ARI.URL, Username: cfg.ARI.Username, Password: cfg.ARI.Password.Reveal(),
			App: cfg.ARI.App, SubscribeAll: true, EventTypes: calls.ARIEventTypes(),
			ServerFilter:   cfg.ARI.ServerFilter,     // the other types held back on Asterisk's side
			AcceptVariable: d.tracker.AcceptVariable, // ChannelVarsets of ignored variables: skipped undecoded
			Handler:        d.tracker.HandleARI,
			OnState:        func(s ari.State, err error) { d.sourceState(s == ari.StateConnected, err) },
			RequestTimeout: cfg.ARI.RequestTimeout,
			ReceiveBuffer:  int(cfg.ReceiveBuffer),
			Logger:         log,
			Metrics:        m,
		})
		if err != nil {
			return fmt.Errorf("asterisk.ari: %w", err)
		}
		d.ariC, src.ari = c, c
	}
	return nil
}

// sourceState runs on the client's event goroutine: it must not block.
func (d *Daemon) sourceState(up bool, err error) {
	if up {
		d.health.Set(depAsterisk, true, "")
		// Events were missed while down (or this is the first connection): reconcile
		// with the live channels so no connect made meanwhile is lost.
		d.tracker.RequestResync()
		return
	}
	if err == nil {
		err = errors.New("disconnected")
	}
	d.health.SetError(depAsterisk, err)
}

func (d *Daemon) startHTTP(o Options) error {
	mux := http.NewServeMux()
	for _, p := range []string{"/ws", "/oml-crm.js", "/agent", "/agent.js"} {
		mux.Handle(p, d.hub)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.Handle("/healthz", d.health.LivenessHandler())
	mux.Handle("/readyz", d.health.ReadinessHandler())
	for p, h := range d.routes {
		mux.Handle(p, h)
	}
	for p, h := range o.Routes {
		mux.Handle(p, h)
	}
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", d.cfg.HTTP.Listen); err != nil {
			return fmt.Errorf("http.listen %s: %w", d.cfg.HTTP.Listen, err)
		}
	}
	d.addr = ln.Addr().String()
	tlsOn := d.cfg.HTTP.TLSCert != "" && d.cfg.HTTP.TLSKey != ""
	var err error
	if d.server, ln, err = d.hardenedServer(mux, ln, !tlsOn); err != nil {
		ln.Close()
		return err
	}
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(d.cfg.HTTP.TLSCert, d.cfg.HTTP.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http.tls_cert / http.tls_key: %w", err)
		}
		d.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, d.server.TLSConfig)
		d.scheme = "https"
	}
	go func() {
		err := d.server.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		d.served <- err
	}()
	return nil
}

// BaseURL is the listener's URL, with 127.0.0.1 for a wildcard address.
func (d *Daemon) BaseURL() string {
	host, port, _ := net.SplitHostPort(d.addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return d.scheme + "://" + net.JoinHostPort(host, port)
}

// Served delivers the HTTP listener's end: an error when it failed while running.
func (d *Daemon) Served() <-chan error { return d.served }

// Resynced reports whether the tracker has reconciled with Asterisk's live channels at
// least once (it does after every login).
func (d *Daemon) Resynced() bool { return d.tracker.Stats().Resyncs > 0 }

// Shutdown stops intake, lets in-flight connects reach the queue or the hub, lets the
// queue finish or persist its attempts, and closes the listener, all within timeout.
// It reports whether everything finished in time.
func (d *Daemon) Shutdown(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	d.log.Info().Dur("timeout_ms", timeout).Msg("shutting down: intake stopped, finishing in-flight work")

	// Past the deadline, whatever still waits (a dispatch blocked on a store that never
	// came up, and so the event handler) is cancelled.
	stopAtDeadline := context.AfterFunc(ctx, d.stopBG)
	defer stopAtDeadline()

	// 1. No new events; 2. connects waiting for lazy reads are emitted with what is known.
	d.stopIntake()
	// 3. Every connect handed to the queue (persisted) or the hub.
	clean := true
	if d.intake != nil {
		if n := d.intake.Wait(ctx); n > 0 {
			clean = false
			d.log.Error().Int("connects", n).Msg("shutdown deadline reached with connects still being dispatched")
		}
	}
	// 4. HTTP and the hub, the queue (running attempts finish or are retried later).
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() {
			if d.server != nil {
				if err := d.server.Shutdown(ctx); err != nil {
					d.server.Close()
				}
			}
		})
		wg.Go(func() {
			if h := d.hub.get(); h != nil {
				h.Close()
			}
		})
		wg.Go(func() {
			if q := d.queue.get(); q != nil {
				q.Close()
			}
		})
		wg.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		clean = false
		d.log.Warn().Msg("shutdown deadline reached: queued deliveries still running will be retried at the next start")
	}
	d.stopBG()
	d.bg.Wait()
	if err := d.goroutines.Close(ctx); err != nil {
		clean = false
		d.log.Warn().Msg("shutdown deadline reached with hand-offs still running")
	}
	if d.catalog != nil {
		d.catalog.Close()
	}
	if d.sessions != nil {
		d.sessions.Close()
	}
	d.log.Info().Dur("took_ms", time.Since(start)).Bool("clean", clean).Msg("oml-crm stopped")
	return clean
}

// stopIntake closes the Asterisk client (no new events), then the tracker (connects
// still waiting for lazy variable reads are emitted with what is known).
func (d *Daemon) stopIntake() {
	if d.amiC != nil {
		d.amiC.Close()
	}
	if d.ariC != nil {
		d.ariC.Close()
	}
	if d.tracker != nil {
		d.tracker.Close()
	}
}

// closeAll releases what a failed start had opened.
func (d *Daemon) closeAll() {
	d.stopIntake()
	if d.server != nil {
		d.server.Close()
	}
	d.stopBG()
	d.bg.Wait()
	if d.hub != nil {
		if h := d.hub.get(); h != nil {
			h.Close()
		}
	}
	if d.queue != nil {
		if q := d.queue.get(); q != nil {
			q.Close()
		}
	}
	_ = d.goroutines.Close(context.Background()) // the hub and the queue waited for theirs
	if d.catalog != nil {
		d.catalog.Close()
	}
	if d.sessions != nil {
		d.sessions.Close()
	}
}

// openHubRetrying builds the cluster-mode hub, retrying with a capped backoff until
// Redis answers or ctx ends; pops meanwhile wait in hubSlot.Pop.
func (d *Daemon) openHubRetrying(ctx context.Context, o agentws.Options) {
	retry := backoff.New(backoff.Policy{Min: 500 * time.Millisecond, Max: 10 * time.Second})
	repeats := lograte.New(time.Minute, 8) // the same error every few seconds for as long as it is down
	for {
		// A failed attempt must not leave its metrics registered: the next attempt
		// registers its own.
		reg := &undoRegisterer{reg: d.reg}
		o.Registerer = reg
		h, err := agentws.New(o)
		if err == nil {
			d.hub.set(h)
			d.health.Set(depRedis, true, "")
			return
		}
		reg.undo()
		d.health.SetError(depRedis, err)
		pause := retry.Next()
		repeats.Event(d.log.Warn(), err.Error()).Err(err).Dur("retry_in_ms", pause).Msg("agent hub: Redis unavailable; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// undoRegisterer remembers what it registered so that it can be unregistered.
type undoRegisterer struct {
	reg  prometheus.Registerer
	done []prometheus.Collector
}

func (u *undoRegisterer) Register(c prometheus.Collector) error {
	if err := u.reg.Register(c); err != nil {
		return err
	}
	u.done = append(u.done, c)
	return nil
}

func (u *undoRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := u.Register(c); err != nil {
			panic(err)
		}
	}
}

func (u *undoRegisterer) Unregister(c prometheus.Collector) bool { return u.reg.Unregister(c) }

func (u *undoRegisterer) undo() {
	for _, c := range u.done {
		u.reg.Unregister(c)
	}
	u.done = nil
}

// lateValue holds a dependency that may come up after start-up (the hub waits for
// Redis, a PostgreSQL outbox for the database): get returns it or the zero value, wait
// blocks until it is set or ctx ends.
type lateValue[T any] struct {
	mu    sync.Mutex
	v     T
	ready chan struct{}
}

func newLateValue[T any]() lateValue[T] { return lateValue[T]{ready: make(chan struct{})} }

func (l *lateValue[T]) set(v T) {
	l.mu.Lock()
	l.v = v
	l.mu.Unlock()
	close(l.ready)
}

func (l *lateValue[T]) get() T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v
}

func (l *lateValue[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-l.ready:
		return l.get(), nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// hubSlot is the agent hub once it is up (in cluster mode, once Redis answered). Until
// then the agent endpoints answer 503 and pops wait (the connect is not lost).
type hubSlot struct{ lateValue[*agentws.Hub] }

func newHubSlot() *hubSlot { return &hubSlot{newLateValue[*agentws.Hub]()} }

// ServeHTTP serves the hub's endpoints, or 503 while it is not up.
func (s *hubSlot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := s.get()
	if h == nil {
		http.Error(w, "agent hub not ready: waiting for Redis (cluster.redis_url); see /readyz", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

func (s *hubSlot) hub(ctx context.Context) (*agentws.Hub, error) {
	h, err := s.wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent hub not up yet (waiting for Redis): %w", err)
	}
	return h, nil
}

// Pop implements crmnotify.AgentSink.
func (s *hubSlot) Pop(ctx context.Context, n crmnotify.Notification) error {
	h, err := s.hub(ctx)
	if err != nil {
		return err
	}
	return h.Pop(ctx, n)
}

// CallEnded implements crmnotify.AgentSink.
func (s *hubSlot) CallEnded(ctx context.Context, callID string) error {
	h, err := s.hub(ctx)
	if err != nil {
		return err
	}
	return h.CallEnded(ctx, callID)
}

// queueSlot is the delivery queue once it is open. A PostgreSQL outbox may open after
// start-up: until then Enqueue waits (the connect is not lost; intake back-pressure
// holds further events).
type queueSlot struct {
	lateValue[*delivery.Queue]
	errMu   sync.Mutex
	openErr error // why the last attempt to open it failed
}

func newQueueSlot() *queueSlot { return &queueSlot{lateValue: newLateValue[*delivery.Queue]()} }

func (s *queueSlot) setOpenError(err error) {
	s.errMu.Lock()
	s.openErr = err
	s.errMu.Unlock()
}

// ping is the delivery store's readiness check: the open queue's store answers, or why
// it is not open yet.
func (s *queueSlot) ping(ctx context.Context) error {
	if q := s.get(); q != nil {
		return q.Ping(ctx)
	}
	s.errMu.Lock()
	openErr := s.openErr
	s.errMu.Unlock()
	if openErr != nil {
		return openErr
	}
	return errors.New("connecting to PostgreSQL")
}

// Enqueue implements crmnotify.ServerSink.
func (s *queueSlot) Enqueue(ctx context.Context, n crmnotify.Notification) error {
	q, err := s.wait(ctx)
	if err != nil {
		return fmt.Errorf("delivery store not open yet: %w", err)
	}
	return q.Enqueue(ctx, n)
}

// sourceRef lets the tracker's lazy reads and resyncs reach the Asterisk client, which
// is created after the tracker (its event handler is the tracker's). It is filled before
// the tracker's Run starts, the only caller.
type sourceRef struct {
	ami *ami.Client
	ari *ari.Client
}

func (s *sourceRef) Getvar(ctx context.Context, channel, variable string) (string, error) {
	return s.ami.Getvar(ctx, channel, variable)
}

func (s *sourceRef) Status(ctx context.Context, channel string, allVariables bool) ([]*ami.Message, error) {
	return s.ami.Status(ctx, channel, allVariables)
}

func (s *sourceRef) CoreShowChannels(ctx context.Context) ([]*ami.Message, error) {
	return s.ami.CoreShowChannels(ctx)
}

func (s *sourceRef) Variable(ctx context.Context, channelID, name string) (string, error) {
	return s.ari.Variable(ctx, channelID, name)
}

func (s *sourceRef) Channels(ctx context.Context) ([]ari.Channel, error) {
	return s.ari.Channels(ctx)
}

func (s *sourceRef) Bridges(ctx context.Context) ([]ari.Bridge, error) {
	return s.ari.Bridges(ctx)
}

// extensionResolver resolves an agent's SIP extension through the catalog.
type extensionResolver struct{ cat catalog.Catalog }

func (r extensionResolver) AgentByExtension(ctx context.Context, ext string) (int, error) {
	a, err := r.cat.AgentByExtension(ctx, ext)
	if err != nil {
		return 0, err
	}
	return a.ID, nil
}

// dialplanSources lists the dialplan-family parameter sources of every campaign (sorted,
// once each whatever the case), so the tracker reads them lazily when the dialplan did
// not announce them.
func dialplanSources(ctx context.Context, cat catalog.Catalog) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cs, err := cat.Campaigns(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the campaigns' dialplan parameters: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range cs {
		for _, p := range c.Params {
			if p.Family == catalog.FamilyDialplan && !seen[strings.ToLower(p.Source)] {
				seen[strings.ToLower(p.Source)] = true
				out = append(out, p.Source)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// refreshDialplanVars re-reads the dialplan parameter sources every catalog.cache_ttl
// (at least every second) until ctx ends, and hands a changed list to the tracker: a
// catalog database that was down at start-up, or a campaign given a new dialplan
// parameter, is picked up without a restart. The tracker's event path only loads the
// current list. failing says the start-up read failed (already logged).
func (d *Daemon) refreshDialplanVars(ctx context.Context, failing bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(time.Duration(d.catalogTTL.Load()), time.Second)):
		}
		names, err := dialplanSources(ctx, d.catalog)
		if err != nil {
			if !failing && ctx.Err() == nil {
				d.log.Warn().Err(err).Msg("dialplan variables read on demand not refreshed; retrying")
			}
			failing = true
			continue
		}
		failing = false
		if !slices.Equal(names, d.tracker.DialplanVars()) {
			d.tracker.SetDialplanVars(names)
			d.log.Info().Strs("dialplan_vars", nonNil(names)).Msg("dialplan variables read on demand updated from the catalog")
		}
	}
}

// NewLogger builds the daemon's logger: JSON, or console lines when format is console
// (or auto and stderr is a terminal). The level is held by LevelWriter so a SIGHUP can
// change it for every component at once.
func NewLogger(w *os.File, format string, level *LevelWriter) zerolog.Logger {
	var out zerolog.LevelWriter = level
	useConsole := format == "console" || (format == "auto" && isTerminal(w))
	if useConsole {
		level.w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	} else {
		level.w = w
	}
	return zerolog.New(out).With().Timestamp().Logger()
}

// LevelWriter drops log events below a level that can change at run time (SIGHUP).
type LevelWriter struct {
	w     io.Writer
	level atomic.Int32
}

// NewLevelWriter drops events below level until SetLevel changes it.
func NewLevelWriter(level zerolog.Level) *LevelWriter {
	l := &LevelWriter{}
	l.level.Store(int32(level))
	return l
}

// SetLevel changes the level; safe while events are written.
func (l *LevelWriter) SetLevel(level zerolog.Level) { l.level.Store(int32(level)) }

func (l *LevelWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

// WriteLevel implements zerolog.LevelWriter.
func (l *LevelWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level < zerolog.Level(l.level.Load()) && level != zerolog.NoLevel {
		return len(p), nil
	}
	return l.w.Write(p)
}

// isTerminal reports whether f is a character device (a TTY).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// amiTLSConfig maps asterisk.ami.tls* to the AMI client's TLS settings; nil without TLS.
func amiTLSConfig(c config.AMI) (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in, warned at start
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("asterisk.ami.tls_ca: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("asterisk.ami.tls_ca: %s holds no PEM certificate", c.TLSCA)
		}
	}
	return t, nil
}
