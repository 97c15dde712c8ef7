package crmnotify

import (
	"strconv"
	"strings"

	"github.com/omlcrm/oml-crm/calls"
)

// ringDone closes when the ringing pop of one (call, agent) has been handed off, so that
// its withdrawal never overtakes it.
type ringDone struct {
	key  string
	done chan struct{}
}

func ringKey(agentID int, ext string) string { return strconv.Itoa(agentID) + "/" + ext }

// Ringing implements calls.PhaseOutput: the ringing pop is dispatched like a connect
// (bounded), before any withdrawal of it.
func (in *Intake) Ringing(r calls.Ringing) {
	select {
	case in.slots <- struct{}{}:
	case <-in.ctx.Done():
		return
	}
	done := make(chan struct{})
	in.mu.Lock()
	if in.rings == nil {
		in.rings = map[string][]ringDone{}
	}
	in.rings[r.CallID] = append(in.rings[r.CallID], ringDone{key: ringKey(r.AgentID, r.Extension), done: done})
	in.all.Add(1)
	in.mu.Unlock()
	in.pool.Go(func() {
		defer in.all.Done()
		defer func() { <-in.slots }()
		defer close(done)
		in.disp.HandleRinging(in.ctx, r)
	})
}

// RingStopped implements calls.PhaseOutput: the withdrawal waits for its ringing pop
// (and the call's Ended waits for the withdrawal: the hub forgets an ended call's pops).
func (in *Intake) RingStopped(r calls.RingStopped) {
	key := ringKey(r.AgentID, r.Extension)
	var wait []chan struct{}
	done := make(chan struct{})
	in.mu.Lock()
	for _, rd := range in.rings[r.CallID] {
		if rd.key == key {
			wait = append(wait, rd.done)
		}
	}
	if in.rings == nil {
		in.rings = map[string][]ringDone{}
	}
	in.rings[r.CallID] = append(in.rings[r.CallID], ringDone{key: "stop " + key, done: done})
	in.all.Add(1)
	in.mu.Unlock()
	in.pool.Go(func() {
		defer in.all.Done()
		defer close(done)
		for _, c := range wait {
			<-c
		}
		in.disp.HandleRingStopped(in.ctx, r)
	})
}

// forgetRings drops a call's ringing hand-offs (at its Ended: nothing refers to them
// any more), so the map holds live calls only; it returns what the Ended must wait for.
// Called with in.mu held.
func (in *Intake) forgetRings(callID string) []chan struct{} {
	rds := in.rings[callID]
	delete(in.rings, callID)
	out := make([]chan struct{}, len(rds))
	for i, rd := range rds {
		out[i] = rd.done
	}
	return out
}

// ringsOf returns the call's ringing pops in flight (in.mu held): a connect waits for
// them, so that its pop replaces a ringing pop already shown.
func (in *Intake) ringsOf(callID string) []chan struct{} {
	var out []chan struct{}
	for _, rd := range in.rings[callID] {
		if !strings.HasPrefix(rd.key, "stop ") {
			out = append(out, rd.done)
		}
	}
	return out
}
