package calls

import (
	"strconv"
	"strings"
	"time"
)

// The call's phases besides Connected: the journal that Ended carries (answer, agents,
// transfers, who hung up and why, the final recording) and the ringing of queue agents.

// Hang-up sides (Ended.HangupBy).
const (
	HangupByCustomer = "customer"
	HangupByAgent    = "agent"
)

// Reasons a ringing stops without becoming the agent's connect (RingStopped.Reason);
// the agentws protocol's pop.withdrawn reasons.
const (
	RingNoAnswer          = "no_answer"
	RingAnsweredElsewhere = "answered_elsewhere"
	RingHangup            = "hangup"
)

// AgentLeg is one agent that talked in a call, in connect order.
type AgentLeg struct {
	AgentID      int
	AgentChannel string
	At           time.Time // when the agent was connected
}

// Ringing says a queue is ringing an agent for a call (AMI AgentCalled, ARI a Dial to the
// agent's leg beginning). It is emitted once per (call, agent channel); the phases
// output gets it.
type Ringing struct {
	CallID       string
	AgentID      int    // 0 when only the extension is known
	Extension    string // the agent leg's extension (Local/1003@… → 1003)
	AgentChannel string
	CampaignID   int
	CampaignType int
	Phone        string
	ContactID    string
	At           time.Time
}

// RingStopped says a ringing did not become that agent's connect: Reason is
// RingNoAnswer, RingAnsweredElsewhere or RingHangup.
type RingStopped struct {
	CallID     string
	CampaignID int
	AgentID    int
	Extension  string
	Reason     string
	At         time.Time
}

// PhaseOutput is optionally implemented by an Output that also wants the ringing facts.
// Its calls are made under the tracker's lock, like Output's.
type PhaseOutput interface {
	Ringing(Ringing)
	RingStopped(RingStopped)
}

// journal is what a call keeps for its Ended.
type journal struct {
	agents                      []*AgentLeg
	campaignID, campaignType    int
	phone, contactID, recording string
	hangupBy, causeText         string
	cause                       int
	customerGone                bool // a customer-side channel hung up
	rings                       []ring
}

type ring struct {
	chanID, ext string
	agentID     int
	campaignID  int
	// cancelled: the dial was cancelled (DialEnd CANCEL): the caller hung up or another
	// agent answered; which one shows next (a connect, a customer hang-up, the end).
	cancelled bool
}

// maxRings bounds the ringing entries of one call (a queue ringing every member).
const maxRings = 64

func (g *group) jr() *journal {
	if g.j == nil {
		g.j = &journal{}
	}
	return g.j
}

// noteFacts keeps the call's identity values seen on ch (before it goes away), for
// calls that end without a connect.
func (t *Tracker) noteFacts(g *group, ch *channel) {
	j := g.jr()
	if j.campaignID == 0 {
		camp := t.lookup(ch, nil, varCampTransfer)
		if camp == "" {
			camp = t.lookup(ch, nil, varCampID)
		}
		j.campaignID, _ = strconv.Atoi(camp)
	}
	if j.campaignType == 0 {
		j.campaignType, _ = strconv.Atoi(t.lookup(ch, nil, varCampType, varCallTypeID))
	}
	if j.phone == "" {
		j.phone = t.lookup(ch, nil, varOutNum)
	}
	if j.contactID == "" {
		j.contactID = t.lookup(ch, nil, varCodCli, varContactID)
	}
	// The recording as this channel last knew it (a transfer may start a new one).
	name := t.varOf(ch, varCampRecFile)
	if name == "" {
		name = t.varOf(ch, varRecFile)
	}
	if mix := t.varOf(ch, varMixMonitor); name != "" || mix != "" {
		if rec := recordingFile(name, mix); rec != "" {
			j.recording = rec
		}
	}
}

// noteHangup records, before ch is removed, who hung up and why: the first channel to
// hang up after the last connect decides (an agent-like channel: the agent; another
// one: the customer). Before any connect only the customer side counts (agents' legs
// hang up when the queue stops ringing them). It also stops the rings of ch.
func (t *Tracker) noteHangup(ch *channel, ev *Event) {
	g := ch.grp
	if g == nil {
		return
	}
	j := g.jr()
	agentLike := t.isAgentLike(ch) || t.rung(j, ch)
	if !agentLike {
		j.customerGone = true
	}
	if j.hangupBy == "" && (len(j.agents) > 0 || !agentLike) {
		j.hangupBy, j.cause, j.causeText = HangupByCustomer, ev.Cause, strings.Clone(ev.CauseText)
		if agentLike {
			j.hangupBy = HangupByAgent
		}
	}
	if !agentLike {
		// The caller is gone: every ring of the call ends with it.
		t.stopRings(g, func(*ring) bool { return true }, RingHangup, ev.At)
		return
	}
	// An agent leg hanging up while it rang (rejected, ring timeout) was not answered;
	// a cancelled ring waits to learn why it was cancelled.
	t.stopRings(g, func(r *ring) bool {
		return !r.cancelled && (r.chanID == ch.id || siblingOf(t, ch, r.chanID))
	}, RingNoAnswer, ev.At)
}

// rung reports whether ch (or its Local sibling) is an agent leg a queue is ringing.
func (t *Tracker) rung(j *journal, ch *channel) bool {
	for i := range j.rings {
		if j.rings[i].chanID == ch.id || siblingOf(t, ch, j.rings[i].chanID) {
			return true
		}
	}
	return false
}

func siblingOf(t *Tracker, ch *channel, id string) bool {
	sib := t.sibling(ch)
	return sib != nil && sib.id == id
}

// stopRings emits RingStopped for the rings match selects and forgets them.
func (t *Tracker) stopRings(g *group, match func(*ring) bool, reason string, at time.Time) {
	j := g.j
	if j == nil || len(j.rings) == 0 {
		return
	}
	po, _ := t.out.(PhaseOutput)
	kept := j.rings[:0]
	for i := range j.rings {
		r := j.rings[i]
		if !match(&r) {
			kept = append(kept, r)
			continue
		}
		if po != nil {
			po.RingStopped(RingStopped{CallID: g.callID, CampaignID: r.campaignID, AgentID: r.agentID, Extension: r.ext, Reason: reason, At: at})
		}
	}
	clear(j.rings[len(kept):])
	j.rings = kept
}

// noteAnswered records a connect when the tracker sees it (its Connected may wait for
// lazy reads): the call is answered from now on, a hang-up noted before (a transfer's) is
// forgotten, the answering agent's ring is promoted (the connect says Rang and replaces
// it) and the other rings were answered elsewhere.
func (t *Tracker) noteAnswered(g *group, p *pending) {
	j := g.jr()
	c := &p.c
	p.leg = &AgentLeg{AgentID: c.AgentID, AgentChannel: c.AgentChannel, At: c.At}
	j.agents = append(j.agents, p.leg)
	j.hangupBy, j.cause, j.causeText = "", 0, ""
	ext := extensionOf(c.AgentChannel)
	kept := j.rings[:0]
	for _, r := range j.rings {
		if (r.agentID != 0 && r.agentID == c.AgentID) || (r.ext != "" && r.ext == ext) {
			c.Rang = true // promoted: forgotten without a RingStopped
			continue
		}
		kept = append(kept, r)
	}
	clear(j.rings[len(kept):])
	j.rings = kept
	t.stopRings(g, func(*ring) bool { return true }, RingAnsweredElsewhere, c.At)
}

// noteConnected completes the journal entry of an emitted connect with what the lazy
// reads found (the agent id, campaign, recording).
func (t *Tracker) noteConnected(g *group, p *pending) {
	j := g.jr()
	c := &p.c
	if p.leg != nil {
		p.leg.AgentID = c.AgentID
	}
	if c.CampaignID != 0 {
		j.campaignID, j.campaignType = c.CampaignID, c.CampaignType
	}
	if c.Phone != "" {
		j.phone = c.Phone
	}
	if c.ContactID != "" {
		j.contactID = c.ContactID
	}
	if c.RecordingFile != "" {
		j.recording = c.RecordingFile
	}
}

// agentCalled handles a queue ringing an agent: a Ringing fact once per agent leg,
// unless the call is a manual or preview one (the agent's own phone dials there).
func (t *Tracker) agentCalled(ev *Event) {
	po, ok := t.out.(PhaseOutput)
	if !ok {
		return
	}
	cust, agent := t.ensure(ev.Channel, ev.At), t.ensure(ev.Peer, ev.At)
	if cust == nil || agent == nil || cust == agent || t.isAgentLike(cust) {
		return // an agent's own leg dialing its phone is not a new ring
	}
	t.applyVars(cust, ev.Vars)
	t.applyVars(agent, ev.PeerVars)
	if ev.MemberName != "" {
		agent.memberName = strings.Clone(ev.MemberName)
	}
	switch t.lookup(cust, agent, varCampType, varCallTypeID) {
	case "1", "4":
		return
	}
	g := cust.grp
	j := g.jr()
	for _, r := range j.rings {
		if r.chanID == agent.id {
			return
		}
	}
	if len(j.rings) >= maxRings {
		return
	}
	if agent.role == roleUnknown {
		// Not roleAgent: that would make the leg agent-like before it answers.
		agent.dialCaller, cust.dialPeer = cust.id, agent.id
	}
	r := Ringing{
		CallID:       t.lookup(cust, agent, varCallID, varUniqueID),
		AgentID:      t.agentIDOf(agent),
		Extension:    extensionOf(agent.name),
		AgentChannel: agent.name,
		Phone:        t.lookup(cust, agent, varOutNum),
		ContactID:    t.lookup(cust, agent, varCodCli, varContactID),
		At:           ev.At,
	}
	if r.CallID == "" {
		r.CallID = g.callID
	}
	camp := t.lookup(cust, agent, varCampTransfer)
	if camp == "" {
		camp = t.lookup(cust, agent, varCampID)
	}
	r.CampaignID, _ = strconv.Atoi(camp)
	r.CampaignType, _ = strconv.Atoi(t.lookup(cust, agent, varCampType, varCallTypeID))
	j.rings = append(j.rings, ring{chanID: agent.id, ext: r.Extension, agentID: r.AgentID, campaignID: r.CampaignID})
	po.Ringing(r)
}

// dialEnded handles a dial of an agent leg that ended unanswered: NOANSWER, BUSY… stop
// its ring (no answer); CANCEL marks it cancelled (the next event tells why).
func (t *Tracker) dialEnded(ev *Event) {
	peer := t.chans[ev.Peer.ID]
	if peer == nil || peer.grp == nil || peer.grp.j == nil {
		return
	}
	g := peer.grp
	if ev.Value == "CANCEL" {
		for i := range g.j.rings {
			if g.j.rings[i].chanID == peer.id {
				g.j.rings[i].cancelled = true
			}
		}
		return
	}
	t.stopRings(g, func(r *ring) bool { return r.chanID == peer.id }, RingNoAnswer, ev.At)
}

// ended builds the call's Ended from its journal; rings still open are withdrawn.
func (t *Tracker) ended(g *group) Ended {
	e := Ended{CallID: g.callID, At: g.endAt, Start: g.start}
	j := g.j
	if j == nil {
		return e
	}
	t.stopRings(g, func(r *ring) bool { return !r.cancelled && !j.customerGone }, RingNoAnswer, g.endAt)
	t.stopRings(g, func(*ring) bool { return true }, RingHangup, g.endAt)
	for _, a := range j.agents {
		if n := len(e.Agents); n > 0 && e.Agents[n-1].AgentID == a.AgentID && e.Agents[n-1].AgentChannel == a.AgentChannel {
			continue // the same agent connected again (a re-bridge)
		}
		e.Agents = append(e.Agents, *a)
	}
	e.CampaignID, e.CampaignType = j.campaignID, j.campaignType
	e.Phone, e.ContactID, e.RecordingFile = j.phone, j.contactID, j.recording
	e.HangupBy, e.HangupCause, e.HangupCauseText = j.hangupBy, j.cause, j.causeText
	return e
}

// mergeJournal moves b's journal into a's (calls merged, sources without Linkedid).
func mergeJournal(a, b *group) {
	if b.j == nil {
		return
	}
	if a.j == nil {
		a.j, b.j = b.j, nil
		return
	}
	ja, jb := a.j, b.j
	ja.agents = append(ja.agents, jb.agents...)
	if len(ja.rings)+len(jb.rings) <= maxRings {
		ja.rings = append(ja.rings, jb.rings...)
	}
	if ja.campaignID == 0 {
		ja.campaignID, ja.campaignType = jb.campaignID, jb.campaignType
	}
	if ja.phone == "" {
		ja.phone = jb.phone
	}
	if ja.contactID == "" {
		ja.contactID = jb.contactID
	}
	if ja.recording == "" {
		ja.recording = jb.recording
	}
	if ja.hangupBy == "" {
		ja.hangupBy, ja.cause, ja.causeText = jb.hangupBy, jb.cause, jb.causeText
	}
	ja.customerGone = ja.customerGone || jb.customerGone
	b.j = nil
}
