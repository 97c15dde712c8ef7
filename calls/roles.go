package calls

import (
	"context"
	"strconv"
	"time"
)

// checkRoles reads the campaign type of a connect whose roles were guessed (no lock
// held) and swaps agent and customer when it says the caller was the agent's phone
// (manual and preview campaigns). It reports whether it swapped.
func (j *lazyJob) checkRoles(ctx context.Context, get func(ch ChannelRef, names ...string) string) bool {
	c := &j.p.c
	typ := get(j.cust, varCampType, varCallTypeID) // the guess took the caller for the customer
	if typ == "" {
		typ = get(j.agent, varCampType, varCallTypeID)
	}
	if typ == "" {
		j.t.log.Info().Str("call_id", c.CallID).Str("channel", c.AgentChannel).Str("peer", c.CustomerChannel).
			Msg("calls: campaign type unreadable: taking the dialed channel for the agent's")
		return false
	}
	if c.CampaignType == 0 {
		c.CampaignType, _ = strconv.Atoi(typ)
	}
	if typ != "1" && typ != "4" || ctx.Err() != nil {
		return false
	}
	j.cust, j.agent = j.agent, j.cust
	c.AgentChannel, c.CustomerChannel = c.CustomerChannel, c.AgentChannel
	c.AgentID = 0 // read again from the real agent's channel
	j.ext = extensionOf(c.AgentChannel)
	j.wantAgent = true
	return true
}

// dedupeSwapped registers a swapped connect's real identity; a connect already emitted
// under it (e.g. before a restart or a reconnect) is dropped. Lock held.
func (j *lazyJob) dedupeSwapped() {
	c := &j.p.c
	if j.t.emitted.seenOrAdd(c.CallID, c.AgentID, j.ext, j.agent.ID, j.at) {
		j.p.drop = true
		j.t.log.Info().Str("call_id", c.CallID).Int("agent_id", c.AgentID).
			Msg("calls: connect already emitted under its real roles; not repeated")
	}
}

// Which of two bridged channels is the agent is certain when one is marked (queue
// member, own OMLAGENTID, the agent's phone behind its Local leg); otherwise it follows
// the campaign type (manual and preview calls dial the customer from the agent's phone,
// every other call dials the agent). When the type is not known yet — VarSet events not
// received (AMI user without the dialplan class) or a call recovered after a reconnect —
// the default (the dialed channel is the agent's) swaps a click-to-call's roles, pops
// the customer's channel as the agent and gives the call a second identity. Such a
// connect's lazy reads read the type first and swap the roles back (checkRoles); the
// corrected identity is then checked against the connects already emitted.

// rolesUnsure: no channel of the pair is marked as the agent's and the campaign type
// is unknown. Lock held.
func (t *Tracker) rolesUnsure(a, b *channel) bool {
	if t.isAgentLike(a) || t.isAgentLike(b) {
		return false
	}
	return t.lookup(a, b, varCampType, varCallTypeID) == ""
}

// behindLocal looks through a Local channel pair on the customer's side. When the other
// half is bridged with an agent (an attended transfer's consultation: the Local pair
// inherited the call's variables and dials the second agent), it returns nil: not a
// connect. When it is bridged with someone else (the transfer completed: the customer
// reaches the second agent through the pair), it returns that channel, the customer.
// Otherwise it returns cust. Lock held.
func (t *Tracker) behindLocal(cust *channel) *channel {
	sib := t.sibling(cust)
	if sib == nil || sib.bridge == nil {
		return cust
	}
	var other *channel
	for _, m := range sib.bridge.members {
		if m == sib {
			continue
		}
		if t.isAgentLike(m) || t.emitted.wasAgent(t.callIDOf(m), m.id) {
			return nil
		}
		if other == nil {
			other = m
		}
	}
	if other == nil {
		return cust
	}
	return other
}

// reexamineSibling: a Local half entered a bridge, which may have connected what its
// other half is bridged with (an attended transfer completing). Lock held.
func (t *Tracker) reexamineSibling(ch *channel, at time.Time) {
	sib := t.sibling(ch)
	if sib == nil || sib.bridge == nil {
		return
	}
	for _, m := range sib.bridge.members {
		if m != sib {
			t.tryConnect(sib, m, at)
		}
	}
}

// callIDOf is the call id tryConnect would use for ch's call.
func (t *Tracker) callIDOf(ch *channel) string {
	if id := t.lookup(ch, nil, varCallID, varUniqueID); id != "" {
		return id
	}
	return ch.grp.callID
}
