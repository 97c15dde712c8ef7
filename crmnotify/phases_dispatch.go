package crmnotify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog"
)

// Phase outcomes (label values of omlcrm_phase_notifications_total{phase, outcome}).
const (
	phaseOutcomeServer  = "server"
	phaseOutcomePopped  = "popped"
	phaseOutcomeSkipped = "skipped"
	phaseOutcomeError   = "error"
)

// HeaderPhase names the phase on server deliveries of the phases besides connect
// (connect deliveries carry no such header, as before phases existed).
const HeaderPhase = "X-OMLCRM-Phase"

// PhaseSink is optionally implemented by the AgentSink (the agent hub) to withdraw a
// ringing pop that did not become the agent's connect.
type PhaseSink interface {
	Withdraw(ctx context.Context, agentID int, popID, reason string) error
}

// DispositionEvent is an agent's disposition as a source reports it (the OMniLeads
// database's disposition history, or an HTTP post with the file catalog).
type DispositionEvent struct {
	// Seq tells apart the saves of one disposition (OMniLeads' history_id): a
	// re-disposition is a new notification, a replayed save is not.
	Seq        string
	CallID     string
	AgentID    int
	CampaignID int
	ContactID  int // 0: none
	Phone      string
	At         time.Time
	// FiresCRM is the option's interaccion_crm: only such dispositions fire the site.
	FiresCRM    bool
	Disposition Disposition
}

// callEndMode is the site's end-of-call opt-in: the configured override (OMniLeads
// catalog: delivery.sites.<id>.call_end), else the catalog's.
func (d *Dispatcher) callEndMode(site *catalog.Site) catalog.CallEndMode {
	if m, ok := (*d.callEnd.Load())[site.ID]; ok {
		return m
	}
	return site.CallEnd
}

// SetCallEndSites replaces the sites' end-of-call overrides (SIGHUP reload of
// delivery.sites); calls ending afterwards use them.
func (d *Dispatcher) SetCallEndSites(m map[int]catalog.CallEndMode) {
	cp := make(map[int]catalog.CallEndMode, len(m))
	for k, v := range m {
		cp[k] = v
	}
	d.callEnd.Store(&cp)
}

// handleCallEnd notifies the campaign's site of the end of the call when it opted in:
// a server delivery with the call_end family (whatever the site's trigger: journaling
// is server to server).
func (d *Dispatcher) handleCallEnd(ctx context.Context, e calls.Ended) {
	if e.CampaignID <= 0 {
		return
	}
	log := d.log.With().Str("call_id", e.CallID).Int("campaign_id", e.CampaignID).Logger()
	var camp *catalog.Campaign
	err := d.retry(ctx, func() (err error) { camp, err = d.catalog.Campaign(ctx, e.CampaignID); return err })
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return
	case err != nil:
		d.phaseOutcome(PhaseCallEnd, phaseOutcomeError)
		log.Error().Err(err).Msg("cannot read the campaign: no end-of-call notification")
		return
	}
	site := camp.Site
	if site == nil || !camp.Interaction.UsesSite() {
		return
	}
	mode := d.callEndMode(site)
	if mode == catalog.CallEndOff || (mode == catalog.CallEndAnswered && len(e.Agents) == 0) {
		return
	}
	end := &CallEnd{Answered: len(e.Agents) > 0, Start: e.Start, End: e.At, HangupBy: e.HangupBy,
		HangupCause: e.HangupCause, HangupCauseText: e.HangupCauseText, Recording: e.RecordingFile}
	agentID := 0
	for i, a := range e.Agents {
		if i == 0 {
			end.Answer = a.At
		} else if prev := e.Agents[i-1]; prev.AgentID != a.AgentID {
			end.Transfers = append(end.Transfers, Transfer{From: prev.AgentID, To: a.AgentID, At: a.At})
		}
		end.Agents = append(end.Agents, a.AgentID)
		agentID = a.AgentID
	}
	x := &dispatch{call: calls.Connected{CallID: e.CallID, AgentID: agentID, CampaignID: e.CampaignID,
		CampaignType: e.CampaignType, Phone: e.Phone, ContactID: e.ContactID, RecordingFile: e.RecordingFile, At: e.At},
		log: log.With().Int("site_id", site.ID).Logger(), campaign: camp}
	_ = d.loadContact(ctx, x)
	_ = d.loadAgent(ctx, x)
	in := Input{Campaign: camp, Contact: x.contact, Agent: x.agent, Call: callData(x.call), End: end}
	n, err := d.phaseNotification(in, PhaseCallEnd, PhaseCallEnd)
	if err != nil {
		d.phaseOutcome(PhaseCallEnd, phaseOutcomeError)
		x.log.Error().Err(err).Msg("cannot render the end-of-call notification (see `oml-crm check`)")
		return
	}
	if err := d.retry(ctx, func() error { return d.server.Enqueue(ctx, n) }); err != nil {
		d.phaseOutcome(PhaseCallEnd, phaseOutcomeError)
		x.log.Error().Err(err).Str("notification_id", n.ID).Msg("cannot queue the end-of-call notification")
		return
	}
	d.phaseOutcome(PhaseCallEnd, phaseOutcomeServer)
	x.log.Debug().Str("notification_id", n.ID).Msg("end-of-call notification queued")
}

// phaseNotification renders in and wraps it as a notification of phase; occurrence
// names the phase's occurrence in the id (see PhaseNotificationID).
func (d *Dispatcher) phaseNotification(in Input, phase, occurrence string) (Notification, error) {
	req, err := Render(in)
	if err != nil {
		return Notification{}, err
	}
	req.Header.Set(HeaderPhase, phase)
	return Notification{
		ID:          PhaseNotificationID(in.Call.CallID, in.Call.AgentID, in.Campaign.Site.ID, occurrence),
		CallID:      in.Call.CallID,
		AgentID:     in.Call.AgentID,
		Campaign:    in.Campaign,
		Site:        in.Campaign.Site,
		Request:     req,
		ConnectedAt: in.Call.At,
		Phase:       phase,
	}, nil
}

func (d *Dispatcher) phaseOutcome(phase, outcome string) {
	d.m.phases.WithLabelValues(phase, outcome).Inc()
}

// ErrDispositionIgnored wraps the reason a disposition fires no CRM (not an error of
// the source: the option has no CRM interaction, the site is not a disposition site…).
var ErrDispositionIgnored = errors.New("disposition fires no CRM")

// HandleDisposition fires the campaign's disposition-trigger site (OMniLeads' trigger 4)
// for a disposition whose option has interaccion_crm: a server delivery when the site
// has no browser target, else a pop (phase "disposition") to the agent. The id derives
// from (call, agent, site, "disposition:"+Seq): a save seen twice (a restart, another
// instance) is queued or popped once. It returns nil when handed off, an error wrapping
// ErrDispositionIgnored when nothing is to be done.
func (d *Dispatcher) HandleDisposition(ctx context.Context, ev DispositionEvent) (Notification, error) {
	log := d.log.With().Str("call_id", ev.CallID).Int("campaign_id", ev.CampaignID).Int("agent_id", ev.AgentID).Logger()
	if !ev.FiresCRM {
		return Notification{}, fmt.Errorf("disposition %d: its option has no CRM interaction: %w", ev.Disposition.ID, ErrDispositionIgnored)
	}
	var camp *catalog.Campaign
	err := d.retry(ctx, func() (err error) { camp, err = d.catalog.Campaign(ctx, ev.CampaignID); return err })
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return Notification{}, fmt.Errorf("campaign %d is not in the catalog: %w", ev.CampaignID, ErrDispositionIgnored)
	case err != nil:
		d.phaseOutcome(PhaseDisposition, phaseOutcomeError)
		return Notification{}, fmt.Errorf("reading campaign %d for disposition %d: %w", ev.CampaignID, ev.Disposition.ID, err)
	}
	site := camp.Site
	if site == nil || !camp.Interaction.UsesSite() || site.Trigger != catalog.TriggerDisposition {
		d.phaseOutcome(PhaseDisposition, phaseOutcomeSkipped)
		return Notification{}, fmt.Errorf("campaign %d has no disposition-trigger site: %w", camp.ID, ErrDispositionIgnored)
	}
	at := ev.At
	if at.IsZero() {
		at = d.now()
	}
	x := &dispatch{call: calls.Connected{CallID: ev.CallID, AgentID: ev.AgentID, CampaignID: camp.ID,
		CampaignType: int(camp.Type), Phone: ev.Phone, ContactID: strconv.Itoa(ev.ContactID), At: at},
		log: log.With().Int("site_id", site.ID).Logger(), campaign: camp}
	if ev.ContactID <= 0 {
		x.call.ContactID = "-1"
	}
	_ = d.loadContact(ctx, x)
	_ = d.loadAgent(ctx, x)
	if x.call.Phone == "" && x.contact != nil {
		x.call.Phone = x.contact.Phone
	}
	disp := ev.Disposition
	in := Input{Campaign: camp, Contact: x.contact, Agent: x.agent, Call: callData(x.call), Disposition: &disp}
	n, err := d.phaseNotification(in, PhaseDisposition, PhaseDisposition+":"+ev.Seq)
	if err != nil {
		d.phaseOutcome(PhaseDisposition, phaseOutcomeError)
		x.log.Error().Err(err).Msg("cannot render the disposition notification (see `oml-crm check`)")
		return Notification{}, err
	}
	logN := x.log.With().Str("notification_id", n.ID).Logger()
	if site.Target == catalog.TargetNone {
		if err := d.retry(ctx, func() error { return d.server.Enqueue(ctx, n) }); err != nil {
			d.phaseOutcome(PhaseDisposition, phaseOutcomeError)
			return n, fmt.Errorf("queueing disposition %d of call %s to site %d: %w", disp.ID, ev.CallID, site.ID, err)
		}
		d.phaseOutcome(PhaseDisposition, phaseOutcomeServer)
		logN.Debug().Msg("disposition delivery queued")
		return n, nil
	}
	if err := d.retry(ctx, func() error { return d.agents.Pop(ctx, n) }); err != nil {
		d.phaseOutcome(PhaseDisposition, phaseOutcomeError)
		return n, fmt.Errorf("popping disposition %d of call %s to agent %d: %w", disp.ID, ev.CallID, ev.AgentID, err)
	}
	d.phaseOutcome(PhaseDisposition, phaseOutcomePopped)
	logN.Debug().Msg("disposition pop handed to the agent hub")
	return n, nil
}

// HandleRinging pops the caller to the rung agent when the campaign opted in to ringing
// pops and its site pops in the browser (agent or automatic trigger). The pop's id is the
// (call, agent, site, "ringing") one; the connect pop names it in Replaces.
func (d *Dispatcher) HandleRinging(ctx context.Context, r calls.Ringing) {
	if r.CampaignID <= 0 {
		return
	}
	log := d.log.With().Str("call_id", r.CallID).Int("campaign_id", r.CampaignID).Logger()
	camp, err := d.catalog.Campaign(ctx, r.CampaignID)
	if err != nil || !d.ringingOn(camp) || camp.Site == nil || !camp.Interaction.UsesSite() {
		return
	}
	if t := camp.Site.Trigger; t != catalog.TriggerAgent && t != catalog.TriggerAutomatic {
		return
	}
	agentID := d.ringAgent(ctx, r.AgentID, r.Extension)
	if agentID <= 0 {
		return
	}
	x := &dispatch{call: calls.Connected{CallID: r.CallID, AgentID: agentID, CampaignID: camp.ID, CampaignType: r.CampaignType,
		Phone: r.Phone, ContactID: r.ContactID, At: r.At}, log: log, campaign: camp}
	_ = d.loadContact(ctx, x)
	_ = d.loadAgent(ctx, x)
	n, err := d.phaseNotification(Input{Campaign: camp, Contact: x.contact, Agent: x.agent, Call: callData(x.call)}, PhaseRinging, PhaseRinging)
	if err != nil {
		d.phaseOutcome(PhaseRinging, phaseOutcomeError)
		log.Error().Err(err).Msg("cannot render the ringing pop")
		return
	}
	if err := d.agents.Pop(ctx, n); err != nil {
		d.phaseOutcome(PhaseRinging, phaseOutcomeError)
		log.Error().Err(err).Msg("cannot hand the ringing pop to the agent hub")
		return
	}
	d.phaseOutcome(PhaseRinging, phaseOutcomePopped)
}

// HandleRingStopped withdraws the ringing pop of a ring that did not become a connect.
func (d *Dispatcher) HandleRingStopped(ctx context.Context, r calls.RingStopped) {
	campaignID := r.CampaignID
	ps, ok := d.agents.(PhaseSink)
	if !ok || campaignID <= 0 {
		return
	}
	camp, err := d.catalog.Campaign(ctx, campaignID)
	if err != nil || !d.ringingOn(camp) || camp.Site == nil {
		return
	}
	agentID := d.ringAgent(ctx, r.AgentID, r.Extension)
	if agentID <= 0 {
		return
	}
	id := PhaseNotificationID(r.CallID, agentID, camp.Site.ID, PhaseRinging)
	if err := ps.Withdraw(ctx, agentID, id, r.Reason); err != nil {
		d.log.Warn().Err(err).Str("call_id", r.CallID).Str("notification_id", id).Msg("cannot withdraw the ringing pop")
	}
}

// ringingOn reports whether the campaign pops while the agent's phone rings.
func (d *Dispatcher) ringingOn(camp *catalog.Campaign) bool {
	return camp != nil && (camp.Ringing || d.ringing[camp.ID])
}

// ringingPopID is the id of the ringing pop a connect replaces ("" when the campaign has
// no ringing pops or the agent was not rung).
func (d *Dispatcher) ringingPopID(c calls.Connected, camp *catalog.Campaign) string {
	if !c.Rang || !d.ringingOn(camp) || camp.Site == nil {
		return ""
	}
	return PhaseNotificationID(c.CallID, c.AgentID, camp.Site.ID, PhaseRinging)
}

func (d *Dispatcher) ringAgent(ctx context.Context, agentID int, ext string) int {
	if agentID > 0 || ext == "" {
		return agentID
	}
	a, err := d.catalog.AgentByExtension(ctx, ext)
	if err != nil {
		return 0
	}
	return a.ID
}
