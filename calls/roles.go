package calls

import (
	"context"
	"time"
)

// Which of two bridged channels is the agent is certain when one is marked (queue
// member, own OMLAGENTID, the agent's phone behind its Local leg); otherwise it follows
// the campaign type (manual and preview calls dial the customer from the agent's phone,
// every other call dials the agent). When the type is not known yet — VarSet events not
// received (AMI user without the dialplan class) or a call recovered after a reconnect —
// guessing would swap a click-to-call's roles, pop the customer's channel as the agent
// and give the call a second identity. The type is then read first, off the event path,
// and the pair examined again.

// roleRead is a lazyJob that reads a pair's campaign type.
type roleRead struct {
	key        string
	a, b       ChannelRef // a first: the caller when known
	aID, bID   string
	at         time.Time
	typ        string // read value
	fromCaller bool   // typ was read on a
}

// rolesUnsure: no channel of the pair is marked as the agent's and the campaign type
// is unknown. Lock held.
func (t *Tracker) rolesUnsure(a, b *channel) bool {
	if t.isAgentLike(a) || t.isAgentLike(b) {
		return false
	}
	return t.lookup(a, b, varCampType, varCallTypeID) == ""
}

// deferRoles starts reading the campaign type of an unsure pair and reports whether the
// connect waits for it (false: decide now, with the default). Lock held.
func (t *Tracker) deferRoles(a, b *channel, at time.Time) bool {
	if t.vars == nil || t.stopped || !t.running {
		return false
	}
	key := a.id + "\x00" + b.id
	if b.id < a.id {
		key = b.id + "\x00" + a.id
	}
	if t.roleReads == nil {
		t.roleReads = make(map[string]bool)
	}
	if done, ok := t.roleReads[key]; ok {
		return !done // a read under way holds the pair; a finished one lets it through
	}
	if a.dialCaller == b.id { // read the caller first: the dialplan sets the type there
		a, b = b, a
	}
	j := &lazyJob{t: t, roles: &roleRead{key: key, a: ChannelRef{ID: a.id, Name: a.name, LinkedID: a.linked},
		b: ChannelRef{ID: b.id, Name: b.name, LinkedID: b.linked}, aID: a.id, bID: b.id, at: at}}
	select {
	case t.jobs <- j:
		t.roleReads[key] = false
		return true
	default:
		return false
	}
}

// run reads the type (no lock held), then examines the pair again.
func (r *roleRead) run(ctx context.Context, j *lazyJob) {
	ctx, cancel := context.WithTimeout(ctx, j.t.lazyTimeout)
	defer cancel()
	all := j.allVars(ctx)
	for i, ch := range [...]ChannelRef{r.a, r.b} {
		if vars, ok := all(ch); ok {
			r.typ = findVar(vars, varCampType)
			if r.typ == "" {
				r.typ = findVar(vars, varCallTypeID)
			}
		} else {
			for _, n := range [...]string{varCampType, varCallTypeID} {
				j.t.m.lazyReads.Inc()
				if v, err := j.t.vars.Getvar(ctx, ch, n); err == nil && v != "" {
					r.typ = v
					break
				}
			}
		}
		if r.typ != "" {
			r.fromCaller = i == 0
			break
		}
	}
	j.t.mu.Lock()
	r.doneLocked(j.t)
	j.t.mu.Unlock()
}

// doneLocked records the type read (if any) and examines the pair again when both
// channels are still bridged together. Lock held.
func (r *roleRead) doneLocked(t *Tracker) {
	if _, ok := t.roleReads[r.key]; !ok {
		return
	}
	a, b := t.chans[r.aID], t.chans[r.bID]
	if a == nil || b == nil {
		delete(t.roleReads, r.key)
		return
	}
	t.roleReads[r.key] = true
	if r.typ != "" {
		on := b
		if r.fromCaller {
			on = a
		}
		t.setVar(on, varCampType, r.typ)
	} else {
		t.log.Info().Str("call_id", a.grp.callID).Str("channel", a.name).Str("peer", b.name).
			Msg("calls: campaign type unreadable: taking the dialed channel for the agent's")
	}
	if a.bridge != nil && a.bridge == b.bridge {
		t.tryConnect(a, b, r.at)
	}
	delete(t.roleReads, r.key)
}
