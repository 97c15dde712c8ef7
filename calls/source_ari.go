package calls

import (
	"context"
	"fmt"

	"github.com/omlcrm/oml-crm/ari"
)

// HandleARI feeds one ARI event (an ari.Config.Handler can call it directly). ARI
// channels carry no Linkedid: the tracker ties a call's channels together through Local
// channel pairs, Dial caller/peer and the OMLCALLID / OMLUNIQUEID value (the mother
// channel's id).
func (t *Tracker) HandleARI(e ari.Event) {
	t.mu.Lock()
	ev := &t.ariScratch
	if t.eventFromARI(e, ev) {
		t.handleLocked(ev)
	}
	ev.Vars, ev.PeerVars = ev.Vars[:0], ev.PeerVars[:0]
	t.mu.Unlock()
}

// ARIEventTypes are the ARI event types HandleARI uses (set them as ari.Config.EventTypes so
// the client skips the rest undecoded). It returns a new slice each time. Keep it in step
// with the switch in eventFromARI: TestARIEventTypesCoverAdapter checks it.
func ARIEventTypes() []string {
	return []string{
		"ChannelCreated", "StasisStart", "ChannelVarset", "Dial",
		"ChannelEnteredBridge", "ChannelLeftBridge", "ChannelDestroyed", "StasisEnd",
	}
}

func ariRef(c *ari.Channel) ChannelRef { return ChannelRef{ID: c.ID, Name: c.Name} }

func appendVarMap(vars []Var, m map[string]string) []Var {
	for k, v := range m {
		if v != "" {
			vars = append(vars, Var{Name: k, Value: v})
		}
	}
	return vars
}

// eventFromARI is the ARI adapter.
func (t *Tracker) eventFromARI(e ari.Event, ev *Event) bool {
	vars, peerVars := ev.Vars[:0], ev.PeerVars[:0]
	*ev = Event{}
	var ch *ari.Channel
	switch x := e.(type) {
	case *ari.ChannelCreated:
		ev.Kind, ch = KindChannel, &x.Channel
	case *ari.StasisStart:
		ev.Kind, ch = KindChannel, &x.Channel
	case *ari.ChannelVarset:
		if x.Channel.ID == "" {
			return false // a global variable
		}
		name, _ := stripInherit(x.Variable)
		if !t.interesting(name) {
			return false
		}
		ev.Kind, ch = KindVar, &x.Channel
		ev.Name, ev.Value = x.Variable, x.Value
	case *ari.DialEvent:
		switch {
		case x.Caller.ID == "":
			return false // an originate (no caller): not a connect
		case x.Dialstatus == "":
			ev.Kind = KindAgentCalled // the dial begins: the peer rings
		case x.Dialstatus == "ANSWER":
			ev.Kind = KindDialAnswer
		case x.Dialstatus == "RINGING" || x.Dialstatus == "PROGRESS" || x.Dialstatus == "PROCEEDING":
			return false
		default:
			ev.Kind, ev.Value = KindDialEnd, x.Dialstatus // the end of a ringing
		}
		ch = &x.Caller
		ev.Peer = ariRef(&x.Peer)
		peerVars = appendVarMap(peerVars, x.Peer.ChannelVars)
	case *ari.ChannelEnteredBridge:
		ev.Kind, ch = KindBridgeEnter, &x.Channel
		ev.Bridge = x.Bridge.ID
	case *ari.ChannelLeftBridge:
		ev.Kind, ch = KindBridgeLeave, &x.Channel
		ev.Bridge = x.Bridge.ID
	case *ari.ChannelDestroyed:
		ev.Kind, ch = KindHangup, &x.Channel
		ev.Cause, ev.CauseText = x.Cause, x.CauseTxt
	case *ari.StasisEnd:
		// Only the owning application gets StasisEnd, and an application that does
		// not subscribe to everything hears nothing more of the channel: it is gone
		// for us.
		ev.Kind, ch = KindHangup, &x.Channel
	default:
		ev.Vars, ev.PeerVars = vars, peerVars
		return false
	}
	ev.Channel = ariRef(ch)
	ev.Vars = appendVarMap(vars, ch.ChannelVars)
	ev.PeerVars = peerVars
	ev.At = e.EventBase().Timestamp
	return true
}

// SnapshotFromARI turns GET /ari/channels and GET /ari/bridges into a Resync snapshot:
// ARI channels do not say which bridge they are in, the bridges list their channels. With
// the bridges, a connect made entirely while the websocket was down is rebuilt (and one
// already emitted is not repeated); without them (nil) only hangups are reconciled.
func SnapshotFromARI(chs []ari.Channel, bridges []ari.Bridge) []SnapshotChannel {
	in := make(map[string]string)
	for i := range bridges {
		for _, id := range bridges[i].Channels {
			in[id] = bridges[i].ID
		}
	}
	out := make([]SnapshotChannel, 0, len(chs))
	for i := range chs {
		c := &chs[i]
		s := SnapshotChannel{ChannelRef: ariRef(c), App: c.Dialplan.AppName, Bridge: in[c.ID]}
		if at, err := c.Created(); err == nil {
			s.Created = at
		}
		s.Vars = appendVarMap(nil, c.ChannelVars)
		out = append(out, s)
	}
	return out
}

// ARIVariabler is what ARIVarReader needs of an ARI client (*ari.Client has it).
type ARIVariabler interface {
	Variable(ctx context.Context, channelID, name string) (string, error)
}

// ARIVarReader reads variables lazily with GET /ari/channels/{id}/variable.
func ARIVarReader(c ARIVariabler) VarReader { return ariVars{c} }

type ariVars struct{ c ARIVariabler }

func (a ariVars) Getvar(ctx context.Context, ch ChannelRef, name string) (string, error) {
	return a.c.Variable(ctx, ch.ID, name)
}

// ARIChannelLister is what ARILister needs of an ARI client (*ari.Client has it).
type ARIChannelLister interface {
	Channels(ctx context.Context) ([]ari.Channel, error)
}

// ARIBridgeLister is what ARILister needs of an ARI client to recover connects made
// while the websocket was down (*ari.Client has it).
type ARIBridgeLister interface {
	Bridges(ctx context.Context) ([]ari.Bridge, error)
}

// ARILister lists live channels with GET /ari/channels and, when c is also an
// ARIBridgeLister, their bridges with GET /ari/bridges (listed after the channels, so
// a channel bridged meanwhile is known to both or to neither in a way Resync handles:
// a bridge member that is not in the channel list is ignored).
func ARILister(c ARIChannelLister) Lister {
	bl, _ := c.(ARIBridgeLister)
	return func(ctx context.Context) ([]SnapshotChannel, error) {
		chs, err := c.Channels(ctx)
		if err != nil {
			return nil, err
		}
		var bridges []ari.Bridge
		if bl != nil {
			if bridges, err = bl.Bridges(ctx); err != nil {
				return nil, fmt.Errorf("listing bridges: %w", err)
			}
		}
		return SnapshotFromARI(chs, bridges), nil
	}
}
