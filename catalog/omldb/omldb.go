// Package omldb reads the catalog from OMniLeads' own PostgreSQL database (release 2.x
// schema): ominicontacto_app_campana, _sitioexterno, _autenticacionsitioexterno,
// _parametroscrm, _basedatoscontacto, _contacto, _agenteprofile and _user. It only reads;
// its sessions are opened read-only.
//
// Caching: a campaign (with its site, authentication, parameters and contact database
// columns), a contact database's column layout and the whole agent list are cached for
// Options.CacheTTL, so a campaign edited in OMniLeads takes effect within that time. A
// contact is read on every call: once the caches are warm, handling a call costs exactly
// one query (the contact row).
//
// Availability: Open does not connect (the pool connects on first use), so a database
// that is down when the daemon starts is not fatal; Ping reports readiness. When a cached
// entry has expired and the database does not answer, the stale entry keeps being served
// (a warning is logged, refreshes are retried at most once per Options.RetryBackoff), so
// calls to cached campaigns keep working through a PostgreSQL restart. A cold lookup or a
// contact read fails with an error the caller can retry.
//
// Values returned are shared with the cache and must not be modified.
package omldb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/lograte"
)

// Options configures the catalog; zero values take the documented defaults.
type Options struct {
	// CacheTTL is how long campaigns, contact database layouts and agents are cached (10s).
	CacheTTL time.Duration
	// QueryTimeout bounds each database query (5s).
	QueryTimeout time.Duration
	// StaleWait is how long a lookup with a stale entry waits for its refresh before
	// answering with the stale value (250ms); the refresh goes on in the background.
	StaleWait time.Duration
	// RetryBackoff is the least time between two refresh attempts of an entry whose last
	// refresh failed (1s).
	RetryBackoff time.Duration
	// MaxConns bounds the connection pool (4).
	MaxConns int32
	// JSONIDsAsNumbersSites lists the external sites whose Site.JSONIDsAsNumbers is set
	// (config catalog.json_ids_as_numbers_sites): OMniLeads has no such column.
	JSONIDsAsNumbersSites []int
	// Logger receives stale-serve warnings and data anomalies.
	Logger zerolog.Logger
	// Registerer receives the catalog's metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.CacheTTL <= 0 {
		o.CacheTTL = 10 * time.Second
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 5 * time.Second
	}
	if o.StaleWait <= 0 {
		o.StaleWait = 250 * time.Millisecond
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
}

// Catalog reads the OMniLeads database. It is safe for concurrent use.
type Catalog struct {
	pool *pgxpool.Pool
	opts Options
	log  zerolog.Logger
	// warnings holds back repeated warnings (every contact of a broken contact
	// database, every read during an outage) to one a minute per kind and source.
	warnings *lograte.Limiter

	campaigns *ttlCache[*catalog.Campaign]
	databases *ttlCache[*contactLayout]
	agents    *ttlCache[*agentDirectory]

	queries *queryCounter
	lookups *prometheus.CounterVec

	layoutWarnings layoutWarnings
}

var _ catalog.Catalog = (*Catalog)(nil)

// Open prepares the catalog for the database at url (postgres://…). It does not connect:
// use Ping to check the database. It fails only on an unusable URL.
func Open(ctx context.Context, url string, opts Options) (*Catalog, error) {
	opts.setDefaults()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("OMniLeads database URL: %w", err)
	}
	pc.MaxConns = opts.MaxConns
	pc.ConnConfig.RuntimeParams["application_name"] = "oml-crm"
	// oml-crm never writes OMniLeads' tables; make that a property of the session.
	pc.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	queries := &queryCounter{metric: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "omlcrm_catalog_db_queries_total",
		Help: "Round trips to the OMniLeads database (a batch counts once).",
	})}
	pc.ConnConfig.Tracer = queries
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omlcrm_catalog_cache_lookups_total",
		Help: "OMniLeads catalog cache lookups by cache (campaign, contact_database, agents) and result (hit, miss, stale).",
	}, []string{"cache", "result"})
	if opts.Registerer != nil {
		for _, m := range []prometheus.Collector{queries.metric, lookups} {
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("register catalog metrics: %w", err)
			}
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("OMniLeads database pool: %w", err)
	}
	c := &Catalog{pool: pool, opts: opts, queries: queries, lookups: lookups,
		log:      opts.Logger.With().Str("component", "catalog.omldb").Logger(),
		warnings: lograte.New(time.Minute, 256)}
	count := func(cache string) func(string) {
		byResult := map[string]prometheus.Counter{}
		for _, r := range []string{"hit", "miss", "stale"} {
			byResult[r] = lookups.WithLabelValues(cache, r)
		}
		return func(result string) { byResult[result].Inc() }
	}
	c.campaigns = newTTLCache[*catalog.Campaign](opts, count("campaign"))
	c.databases = newTTLCache[*contactLayout](opts, count("contact_database"))
	c.agents = newTTLCache[*agentDirectory](opts, count("agents"))
	return c, nil
}

// Ping checks that the database answers.
func (c *Catalog) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	defer cancel()
	if err := c.pool.Ping(ctx); err != nil {
		return fmt.Errorf("OMniLeads database: %w", err)
	}
	return nil
}

// SetCacheTTL changes Options.CacheTTL while running (a SIGHUP reload): from the next
// lookup on, cached campaigns, contact database layouts and agents are fresh for d,
// including those cached before the change. d <= 0 restores the default (10s). It is
// safe for concurrent use.
func (c *Catalog) SetCacheTTL(d time.Duration) {
	if d <= 0 {
		d = 10 * time.Second
	}
	c.campaigns.setTTL(d)
	c.databases.setTTL(d)
	c.agents.setTTL(d)
}

// Close closes the connection pool.
func (c *Catalog) Close() { c.pool.Close() }

// Campaign returns the campaign, from the cache when fresh.
func (c *Catalog) Campaign(ctx context.Context, id int) (*catalog.Campaign, error) {
	return c.campaigns.get(ctx, strconv.Itoa(id), func(ctx context.Context) (*catalog.Campaign, error) {
		cs, err := c.loadCampaigns(ctx, &id)
		if err != nil {
			return nil, fmt.Errorf("read campaign %d: %w", id, err)
		}
		if len(cs) == 0 {
			return nil, fmt.Errorf("campaign %d: %w", id, catalog.ErrNotFound)
		}
		return cs[0], nil
	}, c.staleLogger("campaign", id))
}

// Campaigns reads every campaign (whatever its state) from the database, in id order,
// and refreshes the cache with them.
func (c *Catalog) Campaigns(ctx context.Context) ([]*catalog.Campaign, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	defer cancel()
	cs, err := c.loadCampaigns(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("read campaigns: %w", err)
	}
	for _, cp := range cs {
		c.campaigns.put(strconv.Itoa(cp.ID), cp)
	}
	return cs, nil
}

// Agent returns the agent by its agent id (ominicontacto_app_agenteprofile.id).
func (c *Catalog) Agent(ctx context.Context, id int) (*catalog.Agent, error) {
	dir, err := c.agentDirectory(ctx)
	if err != nil {
		return nil, err
	}
	if a, ok := dir.byID[id]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("agent %d: %w", id, catalog.ErrNotFound)
}

// AgentByExtension returns the agent whose SIP extension is ext.
func (c *Catalog) AgentByExtension(ctx context.Context, ext string) (*catalog.Agent, error) {
	dir, err := c.agentDirectory(ctx)
	if err != nil {
		return nil, err
	}
	if a, ok := dir.byExtension[ext]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("agent with SIP extension %q: %w", ext, catalog.ErrNotFound)
}

func (c *Catalog) staleLogger(what string, id int) func(error) {
	return func(err error) {
		ev := c.warnings.Event(c.log.Warn(), "stale").Err(err).Str("entry", what)
		if id > 0 {
			ev = ev.Int(what+"_id", id) // campaign_id, contact_database_id: the names used everywhere
		}
		ev.Msg("OMniLeads database unavailable: serving the cached copy")
	}
}

// isNotFound tells a definitive "no such row" from a failure worth retrying.
func isNotFound(err error) bool { return errors.Is(err, catalog.ErrNotFound) }

// queryCounter counts database round trips (pgx tracer).
type queryCounter struct {
	n      atomic.Int64
	metric prometheus.Counter
}

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	q.metric.Inc()
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A batch is one round trip, whatever the number of statements in it; its statements are
// not reported to TraceQueryStart.
func (q *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	q.n.Add(1)
	q.metric.Inc()
	return ctx
}

func (q *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (q *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
