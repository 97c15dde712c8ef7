package crmnotify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/backoff"
)

// ServerSink takes server-trigger notifications: the durable delivery queue. Enqueue
// returns once the notification is persisted (or known to be already queued under the
// same Notification.ID).
type ServerSink interface {
	Enqueue(ctx context.Context, n Notification) error
}

// AgentSink takes agent- and automatic-trigger notifications: the agent websocket hub.
// Pop hands a notification to the agent's browser(s); CallEnded tells the hub the call is
// over so that its pops are no longer replayed on reconnect.
type AgentSink interface {
	Pop(ctx context.Context, n Notification) error
	CallEnded(ctx context.Context, callID string) error
}

// DispatcherOptions are the dependencies and knobs of a Dispatcher.
type DispatcherOptions struct {
	Catalog catalog.Catalog // required
	Server  ServerSink      // required: server-trigger sites
	Agents  AgentSink       // required: agent/automatic-trigger sites and call ends
	Logger  zerolog.Logger
	// Registerer receives the dispatcher's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock (time.Now when nil); used when a Connected carries no time.
	Now func() time.Time
	// Attempts is how many times a transient failure (catalog lookup other than not
	// found, sink hand-off) is tried before giving up; default 3.
	Attempts int
	// Backoff is the pause after the first failed attempt, doubled after each further
	// one; default 100ms.
	Backoff time.Duration
	// UpdateInterval is how often Run tries again to read the contacts of pops sent
	// incomplete; default 1s.
	UpdateInterval time.Duration
	// UpdateFor is how long after the connect an incomplete pop is still updated (the
	// agent hub's pop TTL); default 2m.
	UpdateFor time.Duration
	// CallEndSites overrides sites' end-of-call opt-in by site id (the OMniLeads
	// catalog: delivery.sites.<id>.call_end).
	CallEndSites map[int]catalog.CallEndMode
	// RingingCampaigns opts campaigns in to ringing pops besides their catalog's
	// ringing flag (the OMniLeads catalog: phases.ringing_campaigns).
	RingingCampaigns map[int]bool
}

// Outcomes of a connect (label values of omlcrm_connects_total).
const (
	OutcomeServer  = "server"  // queued for server delivery
	OutcomePopped  = "popped"  // handed to the agent hub
	OutcomeSkipped = "skipped" // nothing to do (see SkipReason)
	OutcomeError   = "error"   // failed: logged at error level
)

// SkipReason says why a connect needs no CRM invocation (label values of
// omlcrm_connects_skipped_total).
type SkipReason string

// Skip reasons.
const (
	SkipNoCampaign       SkipReason = "no_campaign"            // call outside any campaign (campaign id 0)
	SkipUnknownCampaign  SkipReason = "unknown_campaign"       // the catalog has no such campaign
	SkipNoSite           SkipReason = "no_site"                // the campaign has no external site
	SkipFormOnly         SkipReason = "form_only"              // interaction is the OMniLeads form only
	SkipTriggerNotOnCall SkipReason = "trigger_not_on_connect" // disposition or dynamic-list site
	SkipNoAgent          SkipReason = "no_agent"               // a browser pop with no agent to show it to
)

var skipReasons = []SkipReason{SkipNoCampaign, SkipUnknownCampaign, SkipNoSite, SkipFormOnly,
	SkipTriggerNotOnCall, SkipNoAgent}

// Pipeline stages (label values of omlcrm_dispatch_errors_total).
const (
	stageCampaign  = "campaign"
	stageContact   = "contact"
	stageAgent     = "agent"
	stageRender    = "render"
	stageEnqueue   = "enqueue"
	stagePop       = "pop"
	stageCallEnded = "call_ended"
)

// SkippedError is returned by HandleConnected when a connect needs no CRM invocation.
// It is not a failure: callers usually ignore it (errors.As to read the reason).
type SkippedError struct {
	Reason SkipReason
	Detail string
}

func (e *SkippedError) Error() string {
	return fmt.Sprintf("skipped (%s): %s", e.Reason, e.Detail)
}

// Dispatcher is the stage between the call tracker and the sinks. For each
// calls.Connected it looks the campaign up, decides whether the campaign's site fires on
// connect, enriches the call with the contact and the agent, renders the CRM request and
// hands the Notification to the server queue or to the agent hub, counting every outcome.
//
// A Dispatcher is safe for concurrent use. It keeps no per-call state: ordering between
// a call's Connected and its Ended is the caller's (call HandleEnded after the
// HandleConnected calls of the same call have returned).
type Dispatcher struct {
	catalog  catalog.Catalog
	server   ServerSink
	agents   AgentSink
	log      zerolog.Logger
	now      func() time.Time
	attempts int
	backoff  time.Duration
	m        dispatcherMetrics
	stages   []stage

	updateEvery, updateFor time.Duration
	updates                popUpdates
	callEnd                atomic.Pointer[map[int]catalog.CallEndMode] // SetCallEndSites replaces it
	ringing                map[int]bool
}

type dispatcherMetrics struct {
	connects       *prometheus.CounterVec
	skipped        *prometheus.CounterVec
	errors         *prometheus.CounterVec
	renderDuration prometheus.Histogram
	duration       *prometheus.HistogramVec
	ended          prometheus.Counter
	phases         *prometheus.CounterVec
}

// NewDispatcher checks the options and registers the metrics.
func NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	if opts.Catalog == nil {
		return nil, errors.New("crmnotify: dispatcher needs a catalog")
	}
	if opts.Server == nil {
		return nil, errors.New("crmnotify: dispatcher needs a server sink (the delivery queue)")
	}
	if opts.Agents == nil {
		return nil, errors.New("crmnotify: dispatcher needs an agent sink (the agent hub)")
	}
	d := &Dispatcher{
		catalog:  opts.Catalog,
		server:   opts.Server,
		agents:   opts.Agents,
		log:      opts.Logger,
		now:      opts.Now,
		attempts: opts.Attempts,
		backoff:  opts.Backoff,
		m:        newDispatcherMetrics(),
		ringing:  opts.RingingCampaigns,
	}
	d.SetCallEndSites(opts.CallEndSites)
	// The pipeline, in order: campaign (and whether its site fires on connect), contact,
	// agent, render, hand-off to the queue or the hub.
	d.stages = []stage{d.loadCampaign, d.loadContact, d.loadAgent, d.render, d.handoff}
	if d.now == nil {
		d.now = time.Now
	}
	if d.attempts <= 0 {
		d.attempts = 3
	}
	if d.backoff <= 0 {
		d.backoff = 100 * time.Millisecond
	}
	d.updateEvery, d.updateFor = opts.UpdateInterval, opts.UpdateFor
	if d.updateEvery <= 0 {
		d.updateEvery = time.Second
	}
	if d.updateFor <= 0 {
		d.updateFor = 2 * time.Minute
	}
	if opts.Registerer != nil {
		for _, c := range d.m.collectors() {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("crmnotify: registering dispatcher metrics: %w", err)
			}
		}
	}
	return d, nil
}

func newDispatcherMetrics() dispatcherMetrics {
	m := dispatcherMetrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omlcrm_connects_total",
			Help: "Calls connected to an agent, by what the dispatcher did with them (server, popped, skipped, error).",
		}, []string{"outcome"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omlcrm_connects_skipped_total",
			Help: "Connects that need no CRM invocation, by reason.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "omlcrm_dispatch_errors_total",
			Help: "Dispatcher failures by pipeline stage (campaign, contact, agent, render, enqueue, pop, call_ended). An agent failure degrades (empty fields); a contact failure makes the delivery wait for the contact and the pop go out incomplete.",
		}, []string{"stage"}),
		renderDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "omlcrm_render_duration_seconds",
			Help:    "Time to render one CRM request.",
			Buckets: prometheus.ExponentialBuckets(0.000005, 4, 9), // 5µs … 330ms
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "omlcrm_dispatch_duration_seconds",
			Help:    "Time from receiving a connect to handing it off (lookups, render, enqueue or pop), by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 9), // 50µs … 3.3s
		}, []string{"outcome"}),
		ended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "omlcrm_dispatch_calls_ended_total",
			Help: "Call ends passed to the agent hub.",
		}),
	}
	m.phases = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "omlcrm_phase_notifications_total",
		Help: "Notifications of the call phases besides connect (ringing, disposition, call_end), by outcome (server, popped, skipped, error).",
	}, []string{"phase", "outcome"})
	for _, p := range []string{PhaseRinging, PhaseDisposition, PhaseCallEnd} {
		for _, o := range []string{phaseOutcomeServer, phaseOutcomePopped, phaseOutcomeSkipped, phaseOutcomeError} {
			m.phases.WithLabelValues(p, o)
		}
	}
	// Pre-create the label values so that dashboards and alerts see zeros, not gaps.
	for _, o := range []string{OutcomeServer, OutcomePopped, OutcomeSkipped, OutcomeError} {
		m.connects.WithLabelValues(o)
		m.duration.WithLabelValues(o)
	}
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(string(r))
	}
	for _, s := range []string{stageCampaign, stageContact, stageAgent, stageRender, stageEnqueue, stagePop, stageCallEnded} {
		m.errors.WithLabelValues(s)
	}
	return m
}

func (m dispatcherMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connects, m.skipped, m.errors, m.renderDuration, m.duration, m.ended, m.phases}
}

// dispatch is one connect travelling through the stages.
type dispatch struct {
	call     calls.Connected
	start    time.Time
	log      zerolog.Logger
	campaign *catalog.Campaign
	contact  *catalog.Contact
	agent    *catalog.Agent
	request  Request
	// missing names what could not be read (MissingContact), contactID the contact.
	missing   []string
	contactID int
}

// stage is one step of the pipeline. It returns a non-nil *SkippedError to stop without
// failure, any other error to stop with failure; each stage counts its own failures.
type stage func(ctx context.Context, x *dispatch) error

// HandleConnected turns one connect into a server delivery or an agent pop, or skips it.
// Every outcome is counted and logged in exactly one line carrying outcome (info when
// handed off or skipped on purpose, warn for a pop without an agent, error on failure),
// so callers may ignore the returned error; it is a *SkippedError for skips, nil when
// handed off. Values the tracker could not obtain (Connected.Missing) are named in a
// warning before it.
func (d *Dispatcher) HandleConnected(ctx context.Context, c calls.Connected) error {
	start := d.now()
	if c.At.IsZero() {
		c.At = start
	}
	x := &dispatch{
		call:  c,
		start: start,
		log: d.log.With().Str("call_id", c.CallID).Int("campaign_id", c.CampaignID).
			Int("agent_id", c.AgentID).Logger(),
	}
	if len(c.Missing) > 0 {
		x.log.Warn().Strs("missing", c.Missing).
			Msg("connect lacks values Asterisk did not give in time: the CRM parameters drawn from them render empty")
	}
	for _, run := range d.stages {
		err := run(ctx, x)
		if err == nil {
			continue
		}
		var skip *SkippedError
		if errors.As(err, &skip) {
			d.m.skipped.WithLabelValues(string(skip.Reason)).Inc()
			d.finish(OutcomeSkipped, start)
			return err
		}
		d.finish(OutcomeError, start)
		return err
	}
	outcome := OutcomePopped
	if x.campaign.Site.Trigger == catalog.TriggerServer {
		outcome = OutcomeServer
	}
	d.finish(outcome, start)
	return nil
}

func (d *Dispatcher) finish(outcome string, start time.Time) {
	d.m.connects.WithLabelValues(outcome).Inc()
	d.m.duration.WithLabelValues(outcome).Observe(d.now().Sub(start).Seconds())
}

func (d *Dispatcher) skip(x *dispatch, reason SkipReason, detail string) error {
	d.outcome(x, x.log.Info(), OutcomeSkipped).Str("reason", string(reason)).Msg("connect skipped: " + detail)
	return &SkippedError{Reason: reason, Detail: detail}
}

// outcome adds to ev what every connect's outcome line carries: the outcome (the label
// of omlcrm_connects_total) and the time since the connect reached the dispatcher.
func (d *Dispatcher) outcome(x *dispatch, ev *zerolog.Event, outcome string) *zerolog.Event {
	return ev.Str("outcome", outcome).Float64("dispatch_ms", float64(d.now().Sub(x.start).Microseconds())/1000)
}

func (d *Dispatcher) fail(stageName string, err error) error {
	d.m.errors.WithLabelValues(stageName).Inc()
	return err
}

// loadCampaign reads the campaign and decides whether its site fires on connect.
func (d *Dispatcher) loadCampaign(ctx context.Context, x *dispatch) error {
	id := x.call.CampaignID
	if id <= 0 {
		return d.skip(x, SkipNoCampaign, "the call is outside any campaign")
	}
	var camp *catalog.Campaign
	err := d.retry(ctx, func() (err error) {
		camp, err = d.catalog.Campaign(ctx, id)
		return err
	})
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return d.skip(x, SkipUnknownCampaign, fmt.Sprintf("campaign %d is not in the catalog", id))
	case err != nil:
		d.outcome(x, x.log.Error(), OutcomeError).Str("stage", stageCampaign).Err(err).
			Msg("connect failed: cannot read the campaign, the CRM is not invoked for this connect")
		return d.fail(stageCampaign, fmt.Errorf("reading campaign %d for call %s: %w", id, x.call.CallID, err))
	}
	x.campaign = camp
	site := camp.Site
	if site == nil {
		return d.skip(x, SkipNoSite, fmt.Sprintf("campaign %d %q has no external site", camp.ID, camp.Name))
	}
	x.log = x.log.With().Int("site_id", site.ID).Str("trigger", site.Trigger.String()).Logger()
	if !camp.Interaction.UsesSite() {
		return d.skip(x, SkipFormOnly, fmt.Sprintf("campaign %d %q interaction is %s", camp.ID, camp.Name, camp.Interaction))
	}
	if !site.Trigger.Known() {
		// Not "fired by OMniLeads itself": nobody fires it. Say so where it will be read.
		x.log.Warn().Int("trigger_code", int(site.Trigger)).
			Msg("the campaign's site has an unknown trigger code (valid: 1 agent, 2 automatic, 3 server, 4 disposition, 5 dynamic list): the CRM is not invoked; see `oml-crm check`")
	}
	if !site.Trigger.FiredOnConnect() {
		return d.skip(x, SkipTriggerNotOnCall, fmt.Sprintf("site %d %q fires on %s, not on connect", site.ID, site.Name, site.Trigger))
	}
	if site.Trigger != catalog.TriggerServer && x.call.AgentID <= 0 {
		// A browser pop needs an agent; the tracker could not tell which one. Unlike the
		// other skips this one is unexpected, hence a warning.
		d.outcome(x, x.log.Warn(), OutcomeSkipped).Str("reason", string(SkipNoAgent)).
			Msg("connect skipped: the agent of the call is unknown, the " + site.Trigger.String() + " pop has nobody to go to")
		return &SkippedError{Reason: SkipNoAgent, Detail: "the agent of the call is unknown"}
	}
	return nil
}

// loadContact reads the contact when the dialplan identified one. A missing contact
// renders empty contact fields; a failing lookup marks the connect incomplete (handoff
// then defers the server delivery, or pops now and updates later).
func (d *Dispatcher) loadContact(ctx context.Context, x *dispatch) error {
	id, err := strconv.Atoi(x.call.ContactID)
	if err != nil || id <= 0 {
		return nil // "-1", "0", "" or not numeric: no contact identified
	}
	var ct *catalog.Contact
	err = d.retry(ctx, func() (err error) {
		ct, err = d.catalog.Contact(ctx, id)
		return err
	})
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		x.log.Warn().Int("contact_id", id).Msg("contact not found: contact parameters render empty")
	case err != nil:
		// A transient failure (the OMniLeads database restarting): the connect goes on
		// without the contact, marked incomplete. A server delivery then waits until the
		// contact can be read; a pop goes out at once and is updated when it can.
		d.m.errors.WithLabelValues(stageContact).Inc()
		x.missing, x.contactID = append(x.missing, MissingContact), id
		x.log.Warn().Err(err).Int("contact_id", id).
			Msg("cannot read the contact now: a server delivery waits for it, a pop goes out incomplete and is updated once it can be read")
	default:
		x.contact = ct
	}
	return nil
}

// loadAgent reads the agent (for agent_username / agent_name). Unknown → nil.
func (d *Dispatcher) loadAgent(ctx context.Context, x *dispatch) error {
	if x.call.AgentID <= 0 {
		return nil
	}
	var ag *catalog.Agent
	err := d.retry(ctx, func() (err error) {
		ag, err = d.catalog.Agent(ctx, x.call.AgentID)
		return err
	})
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		x.log.Warn().Msg("agent not in the catalog: agent name parameters render empty")
	case err != nil:
		d.m.errors.WithLabelValues(stageAgent).Inc()
		x.log.Error().Err(err).Msg("cannot read the agent: agent name parameters render empty")
	default:
		x.agent = ag
	}
	return nil
}

func (d *Dispatcher) render(_ context.Context, x *dispatch) error {
	in := Input{
		Campaign: x.campaign,
		Contact:  x.contact,
		Agent:    x.agent,
		Call:     callData(x.call),
	}
	t0 := time.Now()
	req, err := Render(in)
	d.m.renderDuration.Observe(time.Since(t0).Seconds())
	if err != nil {
		// A render error is a configuration problem of this campaign/site: say which.
		// Render's error names the parameter at fault.
		d.outcome(x, x.log.Error(), OutcomeError).Str("stage", stageRender).Err(err).
			Str("campaign_name", x.campaign.Name).Str("site_name", x.campaign.Site.Name).
			Bool("misconfigured", errors.Is(err, ErrMisconfigured)).
			Msg("connect failed: cannot render the CRM request, fix the campaign's CRM parameters or the site URL (see `oml-crm check`)")
		return d.fail(stageRender, fmt.Errorf("call %s: %w", x.call.CallID, err))
	}
	x.request = req
	return nil
}

// callData maps the tracker's fact to what Render reads.
func callData(c calls.Connected) CallData {
	wait := ""
	if c.CallWaitDuration > 0 {
		// Whole seconds, as OMniLeads' call_wait_duration; 0 means unknown.
		wait = strconv.FormatInt(int64(c.CallWaitDuration/time.Second), 10)
	}
	return CallData{
		CallID:           c.CallID,
		AgentID:          c.AgentID,
		Phone:            c.Phone,
		ContactID:        c.ContactID,
		RecFilename:      c.RecordingFile,
		CallWaitDuration: wait,
		At:               c.At,
		Dialplan:         c.Dialplan,
	}
}

func (d *Dispatcher) handoff(ctx context.Context, x *dispatch) error {
	site := x.campaign.Site
	n := Notification{
		ID:          NotificationID(x.call.CallID, x.call.AgentID, site.ID),
		CallID:      x.call.CallID,
		AgentID:     x.call.AgentID,
		Campaign:    x.campaign,
		Site:        site,
		Request:     x.request,
		ConnectedAt: x.call.At,
		Replaces:    d.ringingPopID(x.call, x.campaign),
	}
	if len(x.missing) > 0 {
		n.Missing = x.missing
		n.Deferred = &Deferred{CampaignID: x.campaign.ID, ContactID: x.contactID, Call: callData(x.call)}
	}
	log := x.log.With().Str("notification_id", n.ID).Logger()
	if site.Trigger == catalog.TriggerServer {
		if err := d.retry(ctx, func() error { return d.server.Enqueue(ctx, n) }); err != nil {
			d.outcome(x, log.Error(), OutcomeError).Str("stage", stageEnqueue).Err(err).
				Msg("connect failed: cannot queue the server delivery, the CRM is not invoked for this connect")
			return d.fail(stageEnqueue, fmt.Errorf("queueing the delivery of call %s to site %d: %w", n.CallID, site.ID, err))
		}
		d.outcome(x, log.Info(), OutcomeServer).Str("method", n.Request.Method).Msg("connect queued for server delivery")
		return nil
	}
	if err := d.retry(ctx, func() error { return d.agents.Pop(ctx, n) }); err != nil {
		d.outcome(x, log.Error(), OutcomeError).Str("stage", stagePop).Err(err).
			Msg("connect failed: cannot hand the pop to the agent hub")
		return d.fail(stagePop, fmt.Errorf("popping call %s to agent %d: %w", n.CallID, n.AgentID, err))
	}
	d.outcome(x, log.Info(), OutcomePopped).Str("target", site.Target.String()).Msg("connect popped: handed to the agent hub")
	if n.Deferred != nil {
		d.updates.add(n, n.ConnectedAt.Add(d.updateFor), log)
	}
	return nil
}

// HandleEnded tells the agent hub that the call is over.
func (d *Dispatcher) HandleEnded(ctx context.Context, e calls.Ended) error {
	d.m.ended.Inc()
	d.updates.dropCall(e.CallID)
	if err := d.retry(ctx, func() error { return d.agents.CallEnded(ctx, e.CallID) }); err != nil {
		d.m.errors.WithLabelValues(stageCallEnded).Inc()
		d.log.Error().Err(err).Str("call_id", e.CallID).Msg("cannot tell the agent hub that the call ended")
		d.handleCallEnd(ctx, e)
		return fmt.Errorf("ending call %s in the agent hub: %w", e.CallID, err)
	}
	d.handleCallEnd(ctx, e)
	return nil
}

// retry runs fn up to d.attempts times with doubling, jittered pauses (the project's one
// backoff); catalog.ErrNotFound and context errors are final.
func (d *Dispatcher) retry(ctx context.Context, fn func() error) error {
	policy := backoff.Policy{Min: d.backoff, Max: d.backoff << min(d.attempts, 16)}
	var err error
	for i := 0; i < d.attempts; i++ {
		if err = fn(); err == nil || errors.Is(err, catalog.ErrNotFound) || ctx.Err() != nil {
			return err
		}
		if i == d.attempts-1 {
			break
		}
		t := time.NewTimer(policy.Delay(i))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
	return err
}
