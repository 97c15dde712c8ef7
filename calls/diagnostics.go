package calls

import "time"

// noVarSetWarnEvery rate-limits the warning that no VarSet event ever arrived.
const noVarSetWarnEvery = time.Hour

// varSetWatch infers, over AMI, a manager user without the `dialplan` read class: AMI
// cannot report a user's classes, but calls that connect while no VarSet event has ever
// arrived say it (VarSet is in that class). Every value then comes from lazy reads.
type varSetWatch struct {
	seen     bool      // a VarSet event arrived (any variable)
	connects uint64    // connects examined by tryConnect
	warned   time.Time // last warning
}

// checkVarSets warns (at most once per noVarSetWarnEvery) when a live AMI connect came
// while no VarSet was ever received. Lock held.
func (t *Tracker) checkVarSets(at time.Time) {
	w := &t.varSets
	if w.seen || (!w.warned.IsZero() && at.Sub(w.warned) < noVarSetWarnEvery) {
		return
	}
	w.warned = at
	t.m.noVarSets.Inc()
	t.log.Warn().Msg("calls: a call connected but Asterisk never sent a VarSet event: the AMI user (asterisk.ami.username) " +
		"evidently lacks the dialplan read class (manager.conf read = call,dialplan,agent,...) or asterisk.ami.events " +
		"leaves VarSet out; every value is then read on demand after the connect, which is slower and needs " +
		"the system class for Status/Getvar")
}

// logConnect logs an emitted connect: at debug level always, at info level when some
// values are still missing (named, so the dialplan or the catalog can be fixed).
func (t *Tracker) logConnect(c *Connected) {
	// Debug only: the dispatcher writes the one info line per connect (and names what is
	// missing at warn).
	t.log.Debug().Str("call_id", c.CallID).Int("campaign_id", c.CampaignID).Int("agent_id", c.AgentID).
		Str("agent_channel", c.AgentChannel).Strs("missing", c.Missing).Msg("calls: connect")
}
