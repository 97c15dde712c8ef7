package calls

import (
	"context"
	"errors"
	"fmt"
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
		n := t.varSets.connects
		t.handleLocked(ev)
		if t.varSets.connects != n {
			t.checkVarSets(ev.At)
		}
	}
	// The scratch event keeps no string of m: the reader's messages share 16 KiB chunks,
	// which a leftover string would keep alive.
	clear(ev.Vars[:cap(ev.Vars)])
	clear(ev.PeerVars[:cap(ev.PeerVars)])
	*ev = Event{Vars: ev.Vars[:0], PeerVars: ev.PeerVars[:0]}
	t.mu.Unlock()
}

// AMIEvents are the AMI event names HandleAMI uses (asterisk.ami.events defaults to
// them: the client drops the rest before parsing, and the server-side Filter keeps them
// off the wire). It returns a new slice each time. Keep it in step with the switch in
// eventFromAMI: TestAMIEventsCoverAdapter checks it.
func AMIEvents() []string {
	return []string{
		"Newchannel", "VarSet", "DialEnd", "AgentCalled", "AgentConnect",
		"BridgeEnter", "BridgeLeave", "Hangup",
	}
}

// eventFromAMI is the AMI adapter: it fills ev from m and reports whether m matters.
func (t *Tracker) eventFromAMI(m *ami.Message, ev *Event) bool {
	var kind Kind
	switch headerValue(m, "Event") {
	case "Newchannel":
		kind = KindChannel
	case "VarSet":
		t.varSets.seen = true
		kind = KindVar // its variable is checked in the loop below, at its first Variable header
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
	varChecked := false
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
			if kind == KindVar && !varChecked {
				// Most VarSets (LOCAL(ARGn), BRIDGEPEER...) stop here, unless the
				// client's Accept (AcceptAMI) already dropped them.
				varChecked = true
				if name, _ := stripInherit(h.Value); !t.interesting(name) {
					ev.Vars, ev.PeerVars = vars[:0], peerVars[:0] // keep the scratch arrays
					return false
				}
			}
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
	if kind == KindVar && !varChecked {
		// No header spelled "Variable": headerValue's fallback (any case).
		if name, _ := stripInherit(m.Get("Variable")); !t.interesting(name) {
			ev.Vars, ev.PeerVars = vars[:0], peerVars[:0]
			return false
		}
	}
	if kind == KindVar {
		ev.Value = unescapeAMI(ev.Value) // VarSet's Value is C-escaped; Getvar's and ARI's are not
	}
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

// SkipOversizedAMI reports whether an AMI event too large for the client's limits can
// be dropped without losing anything the tracker needs (ami.Config.SkipOversized): any
// event HandleAMI ignores, and a VarSet of a variable it does not keep. A VarSet whose
// variable could not be read is not droppable. It is safe for concurrent use.
func (t *Tracker) SkipOversizedAMI(event, variable string) bool {
	switch event {
	case "Newchannel", "DialEnd", "AgentCalled", "AgentConnect", "BridgeEnter", "BridgeLeave", "Hangup":
		return false // AgentCalled: the Ringing fact
	case "VarSet":
		name, _ := stripInherit(variable)
		return name != "" && !t.interesting(name)
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
	now := time.Now()
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
		if d, ok := parseHMS(m.Get("Duration")); ok {
			s.Created = now.Add(-d)
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

// parseHMS parses CoreShowChannel's Duration ("01:02:03").
func parseHMS(v string) (time.Duration, bool) {
	h, rest, ok1 := strings.Cut(v, ":")
	m, sec, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return 0, false
	}
	var n [3]int
	for i, part := range [...]string{h, m, sec} {
		x, err := strconv.Atoi(part)
		if err != nil || x < 0 {
			return 0, false
		}
		n[i] = x
	}
	return time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second, true
}

// AMIGetvar is what AMIVarReader needs of an AMI client (*ami.Client has it).
type AMIGetvar interface {
	Getvar(ctx context.Context, channel, variable string) (string, error)
}

// AMIVarReader reads variables lazily with the AMI Getvar action (by channel name).
// When c also has Status (AMIStatuser), the reader is a ChannelVarReader: variables are
// then matched case-insensitively, whatever the dialplan's spelling.
func AMIVarReader(c AMIGetvar) VarReader {
	if s, ok := c.(AMIStatuser); ok {
		return amiStatusVars{amiVars{c}, s}
	}
	return amiVars{c}
}

type amiVars struct{ c AMIGetvar }

func (a amiVars) Getvar(ctx context.Context, ch ChannelRef, name string) (string, error) {
	return a.c.Getvar(ctx, ch.Name, name)
}

// AMIStatuser is what the AMI reader needs to read every variable of a channel at once
// (*ami.Client has it). With it, AMIVarReader returns a ChannelVarReader.
type AMIStatuser interface {
	Status(ctx context.Context, channel string, allVariables bool) ([]*ami.Message, error)
}

type amiStatusVars struct {
	amiVars
	s AMIStatuser
}

// ChannelVars reads the channel's variables with Status / AllVariables: one
// `Variable: NAME=value` header each, under the name the dialplan set.
func (a amiStatusVars) ChannelVars(ctx context.Context, ch ChannelRef) ([]Var, error) {
	if ch.Name == "" {
		return nil, errors.New("calls: reading a channel's variables with Status: the channel has no name")
	}
	list, err := a.s.Status(ctx, ch.Name, true)
	if err != nil {
		return nil, err
	}
	var vars []Var
	for _, m := range list {
		if m.Event() != "Status" || m.Get("Channel") != ch.Name {
			continue
		}
		for _, h := range m.Headers {
			if h.Key == "Variable" {
				vars = appendVar(vars, h.Value)
			}
		}
		return vars, nil
	}
	return nil, fmt.Errorf("calls: Status listed no channel %s", ch.Name)
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
