package calls

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/ami"
)

// HandleAMI feeds one AMI message (an ami.Config.Handler can call it directly). Events
// that do not concern calls are dropped before any work is done; the message is not
// kept after the call returns.
func (t *Tracker) HandleAMI(m *ami.Message) {
	t.mu.Lock()
	ev := &t.amiScratch
	if t.eventFromAMI(m, ev) {
		t.handleLocked(ev)
	}
	ev.Vars, ev.PeerVars = ev.Vars[:0], ev.PeerVars[:0]
	t.mu.Unlock()
}

// eventFromAMI is the AMI adapter: it fills ev from m and reports whether m matters.
func (t *Tracker) eventFromAMI(m *ami.Message, ev *Event) bool {
	var kind Kind
	switch headerValue(m, "Event") {
	case "Newchannel":
		kind = KindChannel
	case "VarSet":
		name, _ := stripInherit(headerValue(m, "Variable"))
		if !t.interesting(name) {
			return false // most VarSets (LOCAL(ARGn), BRIDGEPEER...) stop here
		}
		kind = KindVar
	case "DialEnd":
		kind = KindDialAnswer
	case "AgentConnect":
		kind = KindAgentConnect
	case "AgentCalled":
		kind = KindAgentCalled
	case "BridgeEnter":
		kind = KindBridgeEnter
	case "BridgeLeave":
		kind = KindBridgeLeave
	case "Hangup":
		kind = KindHangup
	default:
		return false
	}
	vars, peerVars := ev.Vars[:0], ev.PeerVars[:0]
	*ev = Event{Kind: kind}
	var status, hold, stamp, cause string
	for _, h := range m.Headers {
		switch h.Key {
		case "Channel":
			ev.Channel.Name = h.Value
		case "Uniqueid":
			ev.Channel.ID = h.Value
		case "Linkedid":
			ev.Channel.LinkedID = h.Value
		case "DestChannel":
			ev.Peer.Name = h.Value
		case "DestUniqueid":
			ev.Peer.ID = h.Value
		case "DestLinkedid":
			ev.Peer.LinkedID = h.Value
		case "Variable":
			ev.Name = h.Value
		case "Value":
			ev.Value = h.Value
		case "BridgeUniqueid":
			ev.Bridge = h.Value
		case "DialStatus":
			status = h.Value
		case "MemberName":
			ev.MemberName = h.Value
		case "HoldTime":
			hold = h.Value
		case "Timestamp":
			stamp = h.Value
		case "Cause":
			cause = h.Value
		case "Cause-txt":
			ev.CauseText = h.Value
		default:
			// channelvars: "ChanVariable: NAME=value" (older Asterisk:
			// "ChanVariable(<channel>): NAME=value"), "DestChanVariable: ...".
			if strings.HasPrefix(h.Key, "ChanVariable") {
				vars = appendVar(vars, h.Value)
			} else if strings.HasPrefix(h.Key, "DestChanVariable") {
				peerVars = appendVar(peerVars, h.Value)
			}
		}
	}
	ev.Vars, ev.PeerVars = vars, peerVars
	if kind == KindDialAnswer && ev.Channel.ID == "" {
		return false // the Originate's own dial (no Channel): not a connect
	}
	if kind == KindDialAnswer && status != "ANSWER" {
		if status == "" {
			return false
		}
		// Not answered: the end of a ringing.
		kind, ev.Kind, ev.Value = KindDialEnd, KindDialEnd, status
	}
	if hold != "" {
		if n, err := strconv.Atoi(hold); err == nil && n >= 0 {
			ev.HoldTime = time.Duration(n) * time.Second
		}
	}
	if stamp != "" {
		ev.At = parseAMITimestamp(stamp)
	}
	if cause != "" {
		ev.Cause, _ = strconv.Atoi(cause)
	}
	return true
}

// headerValue is Message.Get for the hot path: Asterisk spells its header names one
// way, so an exact comparison (length first) finds them; it falls back to Get.
func headerValue(m *ami.Message, key string) string {
	for i := range m.Headers {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value
		}
	}
	return m.Get(key)
}

func appendVar(vars []Var, nv string) []Var {
	i := strings.IndexByte(nv, '=')
	if i <= 0 {
		return vars
	}
	return append(vars, Var{Name: nv[:i], Value: nv[i+1:]})
}

// parseAMITimestamp parses "1795483380.123456" (manager.conf timestampevents=yes).
func parseAMITimestamp(s string) time.Time {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseInt(frac, 10, 64)
		if err == nil {
			for i := len(frac); i < 9; i++ {
				f *= 10
			}
			ns = f
		}
	}
	return time.Unix(n, ns)
}

// SnapshotFromAMI turns a CoreShowChannels reply (the CoreShowChannel events; other
// messages are skipped) into a Resync snapshot.
func SnapshotFromAMI(list []*ami.Message) []SnapshotChannel {
	out := make([]SnapshotChannel, 0, len(list))
	for _, m := range list {
		if m.Event() != "CoreShowChannel" {
			continue
		}
		s := SnapshotChannel{
			ChannelRef: ChannelRef{ID: m.Get("Uniqueid"), Name: m.Get("Channel"), LinkedID: m.Get("Linkedid")},
			Bridge:     m.Get("BridgeId"),
			App:        m.Get("Application"),
		}
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, "ChanVariable") {
				s.Vars = appendVar(s.Vars, h.Value)
			}
		}
		if s.ID != "" {
			out = append(out, s)
		}
	}
	return out
}

// AMIGetvar is what AMIVarReader needs of an AMI client (*ami.Client has it).
type AMIGetvar interface {
	Getvar(ctx context.Context, channel, variable string) (string, error)
}

// AMIVarReader reads variables lazily with the AMI Getvar action (by channel name).
func AMIVarReader(c AMIGetvar) VarReader { return amiVars{c} }

type amiVars struct{ c AMIGetvar }

func (a amiVars) Getvar(ctx context.Context, ch ChannelRef, name string) (string, error) {
	return a.c.Getvar(ctx, ch.Name, name)
}

// AMIChannelLister is what AMILister needs of an AMI client (*ami.Client has it).
type AMIChannelLister interface {
	CoreShowChannels(ctx context.Context) ([]*ami.Message, error)
}

// AMILister lists live channels with the CoreShowChannels action.
func AMILister(c AMIChannelLister) Lister {
	return func(ctx context.Context) ([]SnapshotChannel, error) {
		list, err := c.CoreShowChannels(ctx)
		if err != nil {
			return nil, err
		}
		return SnapshotFromAMI(list), nil
	}
}
