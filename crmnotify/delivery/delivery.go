// Package delivery sends server-trigger CRM notifications durably: each
// crmnotify.Notification is written to an outbox (SQLite for one node, PostgreSQL when
// several instances share work) before the first attempt, dispatched at once by an
// in-process worker pool, retried with exponential backoff and jitter until a maximum
// age, then dead-lettered. Every attempt is recorded (time, status, latency, error,
// response excerpt) and the outbox is queryable from the CLI.
//
// Delivery is at least once: a crash between the CRM's answer and the commit of the
// result resends the request, with the same Idempotency-Key header (the notification id)
// so the CRM can drop the duplicate.
//
// Sites that log in for a bearer token (OMniLeads' external-site authentication): the
// credentials are never written to the outbox. A delivery attempted by a process that
// did not enqueue it (after a restart, or another instance's) reads the site's current
// login settings through Options.SiteResolver; CatalogSites(cat) documents how a
// campaign that now points at another site is handled. Without a resolver such a
// delivery fails and is retried until its maximum age.
//
// Redirects: only redirects to the same scheme and host are followed (at most 5); any
// other 3xx ends the attempt and the delivery is dead-lettered, so that a notification
// and its bearer token never reach another host. Following Go's net/http:
//   - 307 and 308 resend the same method with the same body and headers (Content-Type,
//     Authorization, Idempotency-Key and X-OMLCRM-Signature, which still matches the
//     body);
//   - 301, 302 and 303 would turn a POST into a GET without a body (a GET stays a GET):
//     the CRM would never see the data while the delivery counted as delivered. So a
//     method-changing redirect is not followed: the attempt ends with the 3xx, the
//     delivery is dead-lettered and its error names the Location. Point the site at the
//     final URL (or have the CRM use 307/308). A GET site's 301/302/303 on the same host
//     is followed.
//
// Why not riverqueue/river: see docs/bench/delivery.md (on SQLite its poll-based fetch
// alone costs p99 ≈ 50 ms against the 20 ms target, and it keeps no per-attempt record).
package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/workpool"
)

// Status is the state of a delivery as the CLI shows it.
type Status string

// Delivery states.
const (
	// StatusPending: never tried yet (or put back by Retry).
	StatusPending Status = "pending"
	// StatusFailed: the last attempt failed; another one is scheduled at NextAttemptAt.
	StatusFailed Status = "failed"
	// StatusDead: given up (maximum age reached, or a final 4xx / cross-host redirect).
	StatusDead Status = "dead"
	// StatusDelivered: the CRM answered 2xx.
	StatusDelivered Status = "delivered"
)

// ParseStatus validates a status name.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case StatusPending, StatusFailed, StatusDead, StatusDelivered:
		return st, nil
	}
	return "", fmt.Errorf("unknown delivery status %q: want pending, failed, dead or delivered", s)
}

// ErrNotFound is wrapped when a delivery id is unknown.
var ErrNotFound = errors.New("delivery not found")

// Delivery is one row of the outbox.
type Delivery struct {
	ID            string // the notification id (stable for call + agent + site)
	CampaignID    int
	CampaignName  string
	SiteID        int
	CallID        string
	AgentID       int
	Status        Status
	Method        string
	URL           string
	Header        http.Header // the rendered request's headers (none today)
	ContentType   string
	Body          []byte
	SiteAuth      bool // the site logs in for a bearer token (credentials are never stored)
	InsecureTLS   bool // the site's auth has ssl_estricto = false
	ConnectedAt   time.Time
	CreatedAt     time.Time
	ExpiresAt     time.Time // CreatedAt (or the last Retry) + MaxAge
	NextAttemptAt time.Time
	Attempts      int
	LastStatus    int // HTTP status of the last attempt; 0 = none or network error
	LastError     string
	DeliveredAt   time.Time     // zero until delivered
	Latency       time.Duration // connect → CRM 2xx, when delivered
	// Attempts log, oldest first; filled by Get only.
	AttemptLog []Attempt
	// Deferred is set while the delivery waits for its contact (the OMniLeads database
	// did not answer at connect): it is not sent until Options.Rerender succeeds.
	Deferred *crmnotify.Deferred
}

// Attempt is one HTTP request to the CRM.
type Attempt struct {
	N        int // 1-based
	At       time.Time
	Status   int // 0 when no HTTP response (network error, login failure)
	Latency  time.Duration
	Error    string // "" on success
	Response string // the response body, truncated to MaxResponseExcerpt bytes
}

// MaxResponseExcerpt is how much of a CRM response body an attempt record keeps.
const MaxResponseExcerpt = 1024

// Filter selects deliveries for List. Zero values do not filter.
type Filter struct {
	Status     Status
	CampaignID int
	Since      time.Duration // created within this long before now
	Limit      int           // default 50
}

// Stats is the outbox at a glance (metrics, health).
type Stats struct {
	Depth          int           // pending + failed
	OldestPending  time.Duration // age of the oldest pending/failed delivery; 0 when none
	Dead           int
	DeliveredTotal int
	// WaitingForContact counts pending deliveries that wait for their contact; the
	// oldest of them has waited OldestWaiting.
	WaitingForContact int
	OldestWaiting     time.Duration
}

// Clock tells the time; tests pass a fake one. Scheduling (created, next attempt, max
// age) uses it; measured latencies use the monotonic wall clock.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Options configure a Queue. Zero values take the documented defaults.
type Options struct {
	// Store is where the outbox lives: "sqlite:PATH" (or a bare path) or a
	// postgres:// / postgresql:// URL. Required.
	Store string
	// Goroutines runs the delivery attempts on reusable goroutines (the daemon's pool,
	// closed after the queue). Optional: nil runs each on a new goroutine.
	Goroutines *workpool.Pool
	// SQLiteSynchronous is SQLite's synchronous mode: "normal" (default; a committed
	// delivery survives kill -9 and any process crash) or "full" (also an OS crash or
	// power cut, at the cost of an fsync per commit).
	SQLiteSynchronous string
	// Schema is the PostgreSQL schema of the outbox tables (oml_crm). oml-crm creates and
	// migrates it; it never touches other schemas.
	Schema string
	// Timeout bounds one attempt end to end (login, connect, TLS, request, response
	// excerpt): 10 s.
	Timeout time.Duration
	// DialTimeout (5 s), TLSHandshakeTimeout (5 s) and ResponseHeaderTimeout (Timeout)
	// bound the phases of an attempt.
	DialTimeout           time.Duration
	TLSHandshakeTimeout   time.Duration
	ResponseHeaderTimeout time.Duration
	// MaxAge is how long a delivery is retried after it was created: 24 h. Then it is dead.
	MaxAge time.Duration
	// Workers is the number of concurrent attempts (1000). Each waiting attempt costs a
	// goroutine and, while the CRM answers, a connection.
	Workers int
	// MaxInFlightPerSite bounds the attempts running at once to one site (8), so that a
	// CRM coming back after an outage is not hit by Workers requests at once. Due
	// deliveries of a site at its bound wait (a few in memory, the rest in the outbox)
	// while other sites proceed.
	MaxInFlightPerSite int
	// HoldLimit bounds the deliveries held in memory while the outbox cannot be written
	// (10000); beyond it Enqueue fails with ErrStoreUnwritable.
	HoldLimit int
	// MinBackoff (1 s) and MaxBackoff (10 min) bound the exponential retry delay; a
	// delay is jittered to between half and all of its value.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// PollInterval is how often the sweeper looks for due deliveries (retries, rows left
	// by a crashed instance, rows put back by `deliveries retry`): 1 s.
	PollInterval time.Duration
	// Lease is how long a claimed delivery stays reserved for the instance attempting it;
	// after that another instance may take it (crash recovery). Default 3×Timeout + 30 s.
	Lease time.Duration
	// SigningSecrets maps a site id to its HMAC-SHA256 signing secret. Replace at run
	// time with SetSigningSecrets.
	SigningSecrets map[int]catalog.Secret
	// WebhookSecrets maps a site id to its Standard Webhooks secrets ("whsec_…", several
	// during a key rotation); Open fails on one that does not decode, naming the site.
	// They win over the secrets a notification's site carries (file catalog). Replace at
	// run time with SetWebhookSecrets.
	WebhookSecrets map[int][]catalog.Secret
	// SiteResolver looks up a site when a delivery to a site that logs in is attempted
	// and this process has not seen the site in an Enqueue (queued before a restart, or
	// by another instance). CatalogSites(cat) is the ready one. Optional: without it
	// (and without Sites) such a delivery fails and is retried until MaxAge.
	SiteResolver SiteResolver
	// Sites is the older form of SiteResolver (site id only); used when SiteResolver
	// is nil. Prefer SiteResolver: CatalogSites checks the delivery's campaign first.
	Sites func(ctx context.Context, siteID int) (*catalog.Site, error)
	// Rerender renders again the request of a delivery queued without its contact
	// (Notification.Deferred): until it succeeds the delivery waits (durably, up to
	// MaxAge) instead of sending blanked fields. crmnotify.Rerender over the catalog is
	// the ready one. Without it such notifications are refused by Enqueue.
	Rerender func(ctx context.Context, def crmnotify.Deferred) (crmnotify.Request, error)
	// UserAgent is the User-Agent header: oml-crm/<version>.
	UserAgent string
	// Logger receives delivery events (never secrets).
	Logger zerolog.Logger
	// Registerer registers the metrics; nil = not registered.
	Registerer prometheus.Registerer
	// Clock defaults to the wall clock.
	Clock Clock
	// Retention is how long delivered and dead deliveries stay in the outbox (30 days).
	Retention time.Duration
	// InstanceID names this instance in the lease columns (default: the host name). It
	// must be stable across restarts, so that a restarted instance takes back at once
	// what it held when it was killed, and distinct per instance sharing PostgreSQL.
	InstanceID string
	// PostgresMaxConns bounds the PostgreSQL pool (10).
	PostgresMaxConns int
}

func (o *Options) withDefaults() {
	if o.Schema == "" {
		o.Schema = "oml_crm"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = min(5*time.Second, o.Timeout)
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = min(5*time.Second, o.Timeout)
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = o.Timeout
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.Workers <= 0 {
		o.Workers = 1000
	}
	if o.HoldLimit <= 0 {
		o.HoldLimit = 10000
	}
	if o.MaxInFlightPerSite <= 0 {
		o.MaxInFlightPerSite = 8
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 3*o.Timeout + 30*time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "oml-crm"
	}
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.PostgresMaxConns <= 0 {
		o.PostgresMaxConns = 10
	}
}

// Queue is the durable delivery queue. It is safe for concurrent use.
type Queue struct {
	opts    Options
	log     zerolog.Logger
	clock   Clock
	store   store
	sender  *sender
	metrics *metrics

	// workCtx bounds every attempt; Close cancels it after the drain grace.
	workCtx    context.Context
	cancelWork context.CancelFunc
	slots      chan struct{} // one token per running attempt (Workers)
	wg         sync.WaitGroup
	wake       chan struct{} // nudges the sweeper (a retry is due soon, a slot freed)
	stopRun    chan struct{} // closed by Close: Run returns before the store closes
	runs       sync.WaitGroup
	backlog    atomic.Bool // due rows wait for a free slot: a freed slot nudges the sweeper

	opened time.Time // when Open ran (Clock)

	mu       sync.Mutex
	wakeAt   time.Time // earliest retry this process scheduled
	closed   bool
	secrets  map[int]catalog.Secret
	webhooks map[int][]webhookKey      // from Options.WebhookSecrets / SetWebhookSecrets
	seenKeys map[int][]webhookKey      // from the sites of enqueued notifications (bounded by the sites)
	siteAuth map[int]*catalog.SiteAuth // last seen per site (from Enqueue)
	resolved map[int]resolvedAuth      // from the site resolver, reused for resolvedAuthTTL
	// sites holds the sites with attempts running or deliveries parked behind them: at
	// most one entry per running attempt (Workers).
	sites map[int]*siteFlow
	// held are deliveries Enqueue accepted while the store could not be written, oldest
	// first (at most HoldLimit); writeErr is the store's last write failure, cleared by a
	// write that succeeds once nothing is held.
	held          []*Delivery
	writeErr      error
	writeErrSince time.Time
	// backlogSites are the sites the backlog gauge has shown (kept at 0 once drained);
	// bounded by the catalog's sites.
	backlogSites map[int]bool

	resolver SiteResolver // nil: none configured
}

// Open opens (creating or migrating) the outbox named by opts.Store. Nothing runs until
// Enqueue or Run; Close releases it.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	opts.withDefaults()
	if opts.InstanceID == "" {
		opts.InstanceID = defaultInstanceID()
	}
	st, err := openStore(ctx, opts)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		st.close()
		return nil, err
	}
	workCtx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		opts:         opts,
		log:          opts.Logger.With().Str("component", "delivery").Logger(),
		clock:        opts.Clock,
		store:        st,
		metrics:      m,
		workCtx:      workCtx,
		cancelWork:   cancel,
		slots:        make(chan struct{}, opts.Workers),
		wake:         make(chan struct{}, 1),
		stopRun:      make(chan struct{}),
		siteAuth:     map[int]*catalog.SiteAuth{},
		seenKeys:     map[int][]webhookKey{},
		resolved:     map[int]resolvedAuth{},
		sites:        map[int]*siteFlow{},
		backlogSites: map[int]bool{},
		resolver:     opts.resolver(),
		opened:       opts.Clock.Now(),
	}
	q.sender = newSender(opts, q.clock)
	q.SetSigningSecrets(opts.SigningSecrets)
	if err := q.SetWebhookSecrets(opts.WebhookSecrets); err != nil {
		q.cancelWork()
		st.close()
		return nil, err
	}
	return q, nil
}

// SetSigningSecrets replaces the per-site signing secrets (SIGHUP reload). Attempts
// that start afterwards use the new set.
func (q *Queue) SetSigningSecrets(secrets map[int]catalog.Secret) {
	cp := make(map[int]catalog.Secret, len(secrets))
	for k, v := range secrets {
		if v != "" {
			cp[k] = v
		}
	}
	q.mu.Lock()
	q.secrets = cp
	q.mu.Unlock()
}

// SetWebhookSecrets replaces the per-site Standard Webhooks secrets (SIGHUP reload). On
// an error (a secret that does not decode, named by site and position) nothing changes.
func (q *Queue) SetWebhookSecrets(secrets map[int][]catalog.Secret) error {
	m := make(map[int][]webhookKey, len(secrets))
	for id, list := range secrets {
		if len(list) == 0 {
			continue
		}
		keys, err := decodeWebhookSecrets(id, list)
		if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		m[id] = keys
	}
	q.mu.Lock()
	q.webhooks = m
	q.mu.Unlock()
	return nil
}

// webhookKeysFor returns the site's Standard Webhooks keys: the configured ones, else
// those its catalog site carried in the last Enqueue.
func (q *Queue) webhookKeysFor(siteID int) []webhookKey {
	q.mu.Lock()
	defer q.mu.Unlock()
	if k, ok := q.webhooks[siteID]; ok {
		return k
	}
	return q.seenKeys[siteID]
}

func (q *Queue) secretFor(siteID int) catalog.Secret {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.secrets[siteID]
}

// Enqueue stores the notification and starts its first attempt at once. When it returns
// nil the delivery is committed and will be delivered or dead-lettered, whatever happens
// to this process. A notification whose id is already queued (another instance, a
// replayed event) is a no-op.
func (q *Queue) Enqueue(ctx context.Context, n crmnotify.Notification) error {
	d, err := q.newDelivery(n)
	if err != nil {
		return err
	}
	if d.SiteAuth {
		q.mu.Lock()
		q.siteAuth[d.SiteID] = n.Site.Auth
		q.mu.Unlock()
	}
	if len(n.Site.WebhookSecrets) > 0 {
		keys, err := decodeWebhookSecrets(n.Site.ID, n.Site.WebhookSecrets)
		if err != nil {
			return fmt.Errorf("enqueue delivery %s: %w", n.ID, err)
		}
		q.mu.Lock()
		q.seenKeys[n.Site.ID] = keys
		q.mu.Unlock()
	}
	// Claim it for ourselves in the same insert: the sweepers (ours and other
	// instances') leave it alone while we attempt it.
	now := q.clock.Now()
	inserted, err := q.store.insert(ctx, d, q.opts.InstanceID, now.Add(q.opts.Lease))
	if err != nil {
		if ctx.Err() == nil && !rowError(err) && q.hold(d, err) {
			return nil // written by the sweeper once the store takes writes (hold.go)
		}
		if ctx.Err() == nil && !rowError(err) {
			err = fmt.Errorf("%w: %w", ErrStoreUnwritable, err)
		}
		return fmt.Errorf("enqueue delivery %s (campaign %d, site %d): %w", d.ID, d.CampaignID, d.SiteID, err)
	}
	q.noteWrite(nil)
	if !inserted {
		q.metrics.enqueued.WithLabelValues("duplicate").Inc()
		return nil
	}
	q.metrics.enqueued.WithLabelValues("new").Inc()
	q.start(ctx, d)
	return nil
}

// start attempts d, just written and claimed, or leaves it to the sweeper when no
// worker can take it.
func (q *Queue) start(ctx context.Context, d *Delivery) {
	if !q.dispatch(d) {
		// Every worker is busy: hand it to the sweeper, which claims due rows as slots free.
		if err := q.store.release(ctx, d.ID, q.opts.InstanceID); err != nil {
			q.log.Warn().Err(err).Str("delivery_id", d.ID).Msg("release claim of queued delivery (it is retried after the lease expires)")
		}
		q.backlog.Store(true)
		q.nudge()
	}
}

func (q *Queue) newDelivery(n crmnotify.Notification) (*Delivery, error) {
	if n.ID == "" {
		return nil, errors.New("enqueue delivery: notification has no id")
	}
	if n.Site == nil {
		return nil, fmt.Errorf("enqueue delivery %s: notification has no site", n.ID)
	}
	if n.Deferred != nil && q.opts.Rerender == nil {
		return nil, fmt.Errorf("enqueue delivery %s (site %d): rendered without its contact and no way to render it again (Options.Rerender)", n.ID, n.Site.ID)
	}
	if n.Request.Method != http.MethodGet && n.Request.Method != http.MethodPost {
		return nil, fmt.Errorf("enqueue delivery %s (site %d): method %q: want GET or POST", n.ID, n.Site.ID, n.Request.Method)
	}
	if err := checkURL(n.Request.URL); err != nil {
		return nil, fmt.Errorf("enqueue delivery %s (site %d): %w", n.ID, n.Site.ID, err)
	}
	now := q.clock.Now()
	d := &Delivery{
		ID:            n.ID,
		SiteID:        n.Site.ID,
		CallID:        n.CallID,
		AgentID:       n.AgentID,
		Status:        StatusPending,
		Method:        n.Request.Method,
		URL:           n.Request.URL,
		Header:        n.Request.Header.Clone(),
		ContentType:   n.Request.ContentType,
		Body:          n.Request.Body,
		SiteAuth:      n.Site.Auth != nil,
		InsecureTLS:   n.Site.Auth != nil && !n.Site.Auth.StrictTLS,
		ConnectedAt:   n.ConnectedAt,
		CreatedAt:     now,
		ExpiresAt:     now.Add(q.opts.MaxAge),
		NextAttemptAt: now,
		Deferred:      n.Deferred,
	}
	if n.Campaign != nil {
		d.CampaignID, d.CampaignName = n.Campaign.ID, n.Campaign.Name
	}
	if d.ConnectedAt.IsZero() {
		d.ConnectedAt = now
	}
	return d, nil
}

// siteFlow is one site's share of the attempts: running ones, and claimed deliveries
// parked until one of them ends.
type siteFlow struct {
	inFlight int
	parked   []*Delivery // at most MaxInFlightPerSite
}

// full: attempts at the bound and as many parked; the sweeper claims none for the site.
func (f *siteFlow) full(max int) bool { return f.inFlight >= max && len(f.parked) >= max }

// dispatch starts an attempt of d (already claimed by this instance) when a worker slot
// is free and its site is under MaxInFlightPerSite, or parks it behind the site's running
// attempts (the attempt that ends first takes it, with its worker slot). It reports
// false when it can do neither: the caller releases the claim. A parked delivery waits
// at most about one attempt (Timeout), well within its lease.
func (q *Queue) dispatch(d *Delivery) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	max := q.opts.MaxInFlightPerSite
	f := q.sites[d.SiteID]
	if f == nil {
		f = &siteFlow{}
		q.sites[d.SiteID] = f
	}
	if f.inFlight >= max {
		if len(f.parked) >= max {
			return false
		}
		f.parked = append(f.parked, d)
		return true
	}
	select {
	case q.slots <- struct{}{}:
	default:
		if f.inFlight == 0 && len(f.parked) == 0 {
			delete(q.sites, d.SiteID)
		}
		return false
	}
	f.inFlight++
	q.wg.Add(1)
	q.opts.Goroutines.Go(func() {
		defer q.wg.Done()
		for next := d; next != nil; next = q.nextParked(d.SiteID) {
			q.attempt(next)
		}
		<-q.slots
		if q.backlog.Load() {
			q.nudge()
		}
	})
	return true
}

// nextParked hands the ending attempt's slot to the site's next parked delivery, if any;
// else the attempt leaves the site.
func (q *Queue) nextParked(siteID int) *Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.sites[siteID]
	if len(f.parked) > 0 && !q.closed {
		d := f.parked[0]
		f.parked[0] = nil
		f.parked = f.parked[1:]
		return d
	}
	// Closing: parked deliveries keep their claim and are taken back at the next start.
	if f.inFlight--; f.inFlight == 0 {
		delete(q.sites, siteID)
	}
	return nil
}

// fullSites are the sites that can take no more claimed deliveries now.
func (q *Queue) fullSites() []int {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []int
	for id, f := range q.sites {
		if f.full(q.opts.MaxInFlightPerSite) {
			out = append(out, id)
		}
	}
	return out
}

// Run sweeps the outbox until ctx is done: it claims due deliveries (retries, deliveries
// a crashed instance left, deliveries put back by the CLI) and refreshes the queue
// gauges. Enqueue works without Run, but retries need it.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.runs.Add(1)
	q.mu.Unlock()
	defer q.runs.Done()
	// Close stops the sweeper before it closes the store, so a sweep never runs
	// against a closed database.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-q.stopRun:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := q.takeBack(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	tookBack := q.clock.Now()
	q.refreshStats(ctx)
	statsEvery := time.NewTicker(max(5*time.Second, q.opts.PollInterval))
	defer statsEvery.Stop()
	pruneEvery := time.NewTicker(time.Hour)
	defer pruneEvery.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-statsEvery.C:
			q.refreshStats(ctx)
			continue
		case <-pruneEvery.C:
			q.prune(ctx)
			continue
		case <-q.wake:
		case <-timer.C:
		}
		if q.heldCount() > 0 {
			q.flushHeld(ctx)
		}
		if now := q.clock.Now(); now.Before(q.opened.Add(min(q.opts.Lease, takeBackFor))) && now.Sub(tookBack) >= time.Second {
			tookBack = now
			if err := q.takeBack(ctx); err != nil && ctx.Err() == nil {
				q.log.Warn().Err(err).Msg("taking back deliveries claimed before a restart (tried again within a second)")
			}
		}
		q.sweep(ctx)
		timer.Reset(q.nextSweepIn())
	}
}

// takeBackFor is how long after opening the queue Run keeps taking back its killed run's
// claims (see takeBack); a statement of the dead process still running in its database
// session ends well within it.
const takeBackFor = 15 * time.Second

// takeBack releases the claims this instance's previous run left (it was killed), so
// that their deliveries are due at once instead of after their lease: claims that
// expire before opened+Lease were made before this process opened the queue. Run does
// it at start and again, at most once a second, for takeBackFor (or the lease if
// shorter): a claim the killed run's PostgreSQL session was still committing when this
// run started (the server finishes a statement whose client died) lands after the
// first pass, and would otherwise wait out its lease.
func (q *Queue) takeBack(ctx context.Context) error {
	n, err := q.store.releaseAll(ctx, q.opts.InstanceID, q.opened.Add(q.opts.Lease))
	if err != nil {
		return fmt.Errorf("delivery queue: take back deliveries claimed before a restart: %w", err)
	}
	if n > 0 {
		q.log.Info().Int("deliveries", n).Msg("taking back deliveries claimed before a restart")
		q.nudge()
	}
	return nil
}

// nextSweepIn is the poll interval, or less when this process scheduled a retry sooner.
func (q *Queue) nextSweepIn() time.Duration {
	wait := q.opts.PollInterval
	q.mu.Lock()
	if !q.wakeAt.IsZero() {
		if d := q.wakeAt.Sub(q.clock.Now()); d < wait {
			wait = max(d, time.Millisecond)
		}
	}
	q.mu.Unlock()
	return wait
}

func (q *Queue) sweep(ctx context.Context) {
	q.mu.Lock()
	now := q.clock.Now()
	if !q.wakeAt.IsZero() && !q.wakeAt.After(now) {
		q.wakeAt = time.Time{}
	}
	q.mu.Unlock()
	q.backlog.Store(false)
	for ctx.Err() == nil {
		free := cap(q.slots) - len(q.slots)
		if free <= 0 {
			q.backlog.Store(true) // more may be due: look again when a slot frees
			return
		}
		batch, err := q.store.claimDue(ctx, q.clock.Now(), min(free, 200), q.opts.InstanceID, q.opts.Lease, q.fullSites())
		if err != nil {
			if ctx.Err() == nil {
				q.log.Error().Err(err).Msg("claim due deliveries")
			}
			return
		}
		for _, d := range batch {
			if !q.dispatch(d) {
				q.backlog.Store(true)
				if err := q.store.release(ctx, d.ID, q.opts.InstanceID); err != nil {
					q.log.Warn().Err(err).Str("delivery_id", d.ID).Msg("release claim")
				}
			}
		}
		if len(batch) < min(free, 200) {
			return
		}
	}
}

// scheduleWake makes the sweeper look again at t (a retry this process scheduled).
func (q *Queue) scheduleWake(t time.Time) {
	q.mu.Lock()
	earlier := q.wakeAt.IsZero() || t.Before(q.wakeAt)
	if earlier {
		q.wakeAt = t
	}
	q.mu.Unlock()
	if earlier {
		q.nudge()
	}
}

func (q *Queue) nudge() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) prune(ctx context.Context) {
	n, err := q.store.prune(ctx, q.clock.Now().Add(-q.opts.Retention))
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn().Err(err).Msg("prune old deliveries")
		}
		return
	}
	if n > 0 {
		q.log.Info().Int("deliveries", n).Dur("retention_ms", q.opts.Retention).Msg("pruned old delivered and dead deliveries")
	}
}

func defaultInstanceID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "oml-crm"
	}
	return h
}

func (q *Queue) refreshStats(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := q.writeProblem(); err != nil {
		q.metrics.storeWritable.Set(0)
	} else {
		q.metrics.storeWritable.Set(1)
	}
	st, err := q.Stats(sctx)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn().Err(err).Msg("refresh delivery queue gauges")
		}
		return
	}
	q.metrics.depth.Set(float64(st.Depth))
	q.metrics.oldest.Set(st.OldestPending.Seconds())
	q.metrics.dead.Set(float64(st.Dead))
	q.metrics.waitingContact.Set(float64(st.WaitingForContact))
	bySite, err := q.store.backlogBySite(sctx)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Warn().Err(err).Msg("refresh delivery queue gauges")
		}
		return
	}
	q.mu.Lock()
	for id := range bySite {
		q.backlogSites[id] = true
	}
	for id := range q.backlogSites {
		site := strconv.Itoa(id)
		q.metrics.siteBacklog.WithLabelValues(site).Set(float64(bySite[id]))
		n := 0
		if f := q.sites[id]; f != nil {
			n = f.inFlight
		}
		q.metrics.siteInFlight.WithLabelValues(site).Set(float64(n))
	}
	q.mu.Unlock()
}

// Ping checks that the outbox answers (one SELECT 1), for readiness probes: a PostgreSQL
// outbox that goes down after Open shows here. It fails after Close.
func (q *Queue) Ping(ctx context.Context) error {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return errors.New("delivery store: the queue is closed")
	}
	if err := q.store.ping(ctx); err != nil {
		return fmt.Errorf("delivery store: %w", err)
	}
	if err := q.writeProblem(); err != nil {
		return fmt.Errorf("delivery store: %w", err)
	}
	return nil
}

// Close stops dispatching, lets running attempts finish for up to Timeout (then cancels
// them: their deliveries are retried after the lease expires), and closes the store.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stopRun)
	q.runs.Wait()
	if q.heldCount() > 0 {
		// A last chance for what the store refused: written now, it is attempted at the
		// next start; still refused, it is lost, and said so.
		fctx, cancel := context.WithTimeout(context.Background(), q.opts.Timeout)
		q.flushHeld(fctx)
		cancel()
		if n := q.heldCount(); n > 0 {
			q.log.Error().Int("deliveries", n).Err(q.writeProblem()).Msg("delivery store still cannot be written at shutdown: held deliveries lost")
		}
	}
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(q.opts.Timeout):
		q.cancelWork()
		<-done
	}
	q.cancelWork()
	q.sender.close()
	return q.store.close()
}

// List returns deliveries matching f, newest first.
func (q *Queue) List(ctx context.Context, f Filter) ([]Delivery, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	var since time.Time
	if f.Since > 0 {
		since = q.clock.Now().Add(-f.Since)
	}
	return q.store.list(ctx, f, since)
}

// Get returns the delivery with its attempts; unknown ids wrap ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (*Delivery, error) {
	return q.store.get(ctx, id)
}

// Retry puts a failed or dead delivery back to pending, due now, with a fresh MaxAge.
// A running daemon's sweeper picks it up within its poll interval. Delivered
// deliveries are not resent (error).
func (q *Queue) Retry(ctx context.Context, id string) error {
	now := q.clock.Now()
	ok, err := q.store.retry(ctx, id, now, now.Add(q.opts.MaxAge))
	if err != nil {
		return fmt.Errorf("retry delivery %s: %w", id, err)
	}
	if !ok {
		d, err := q.store.get(ctx, id)
		if err != nil {
			return fmt.Errorf("retry delivery %s: %w", id, err)
		}
		return fmt.Errorf("retry delivery %s: it is %s, not failed or dead", id, d.Status)
	}
	q.nudge()
	return nil
}

// RetryDead puts every dead delivery back to pending (see Retry) and returns how many.
func (q *Queue) RetryDead(ctx context.Context) (int, error) {
	now := q.clock.Now()
	n, err := q.store.retryDead(ctx, now, now.Add(q.opts.MaxAge))
	if err != nil {
		return 0, fmt.Errorf("retry dead deliveries: %w", err)
	}
	q.nudge()
	return n, nil
}

// Stats counts the outbox.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	return q.store.stats(ctx, q.clock.Now())
}
