package crmnotify

import (
	"strconv"

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
	go func() {
		defer in.all.Done()
		defer func() { <-in.slots }()
		defer close(done)
		in.disp.HandleRinging(in.ctx, r)
	}()
}

// RingStopped implements calls.PhaseOutput: the withdrawal waits for its ringing pop.
func (in *Intake) RingStopped(r calls.RingStopped) {
	key := ringKey(r.AgentID, r.Extension)
	var wait []chan struct{}
	in.mu.Lock()
	for _, rd := range in.rings[r.CallID] {
		if rd.key == key {
			wait = append(wait, rd.done)
		}
	}
	in.all.Add(1)
	in.mu.Unlock()
	go func() {
		defer in.all.Done()
		for _, c := range wait {
			<-c
		}
		in.disp.HandleRingStopped(in.ctx, r)
	}()
}

// forgetRings drops a call's ringing hand-offs (at its Ended: nothing refers to them
// any more), so the map holds live calls only.
func (in *Intake) forgetRings(callID string) {
	delete(in.rings, callID)
}
