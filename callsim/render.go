package callsim

import (
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

type stepKind uint8

const (
	evNewchannel stepKind = iota + 1
	evVarSet
	evNewexten
	evNewstate
	evDialBegin
	evDialEnd
	evQueueCallerJoin
	evAgentCalled
	evQueueCallerLeave
	evAgentConnect
	evAgentComplete
	evQueueCallerAbandon
	evBridgeCreate
	evBridgeEnter
	evBridgeLeave
	evBridgeDestroy
	evSoftHangupRequest
	evHangupRequest
	evHangup
	evBlindTransfer
	evAttendedTransfer
	evMixMonitorStart
	evMusicOnHoldStart
	evMusicOnHoldStop
	evHold
	evUnhold
	evLocalOptimizationBegin
	evLocalOptimizationEnd
)

var amiNames = [...]string{
	evNewchannel: "Newchannel", evVarSet: "VarSet", evNewexten: "Newexten", evNewstate: "Newstate",
	evDialBegin: "DialBegin", evDialEnd: "DialEnd", evQueueCallerJoin: "QueueCallerJoin",
	evAgentCalled: "AgentCalled", evQueueCallerLeave: "QueueCallerLeave", evAgentConnect: "AgentConnect",
	evAgentComplete: "AgentComplete", evQueueCallerAbandon: "QueueCallerAbandon",
	evBridgeCreate: "BridgeCreate", evBridgeEnter: "BridgeEnter", evBridgeLeave: "BridgeLeave",
	evBridgeDestroy: "BridgeDestroy", evSoftHangupRequest: "SoftHangupRequest",
	evHangupRequest: "HangupRequest", evHangup: "Hangup", evBlindTransfer: "BlindTransfer",
	evAttendedTransfer: "AttendedTransfer", evMixMonitorStart: "MixMonitorStart",
	evMusicOnHoldStart: "MusicOnHoldStart", evMusicOnHoldStop: "MusicOnHoldStop",
	evHold: "Hold", evUnhold: "Unhold",
	evLocalOptimizationBegin: "LocalOptimizationBegin", evLocalOptimizationEnd: "LocalOptimizationEnd",
}

func privilege(k stepKind) string {
	switch k {
	case evVarSet, evNewexten:
		return "dialplan,all"
	case evQueueCallerJoin, evAgentCalled, evQueueCallerLeave, evAgentConnect, evAgentComplete, evQueueCallerAbandon:
		return "agent,all"
	}
	return "call,all"
}

type kv struct{ k, v string }

// chanSnap is a channel's state at one step.
type chanSnap struct {
	name, uid, linked string
	state             int
	cidNum, cidName   string
	connNum, connName string
	context, exten    string
	prio              int
	app, appData      string
	created           time.Duration // since the call's start
	vars              []kv          // channelvars
}

type bridgeSnap struct {
	id, typ string
	members []string // channel ids, after the step
}

// Step is one Asterisk event of a call.
type Step struct {
	At       time.Duration // since the call's start
	kind     stepKind
	ch, dest chanSnap  // dest.name == "": none (ch.name == "": none, e.g. the Originate's Dial)
	src      *chanSnap // LocalOptimizationBegin: the channel that replaces a Local half
	bridge   bridgeSnap
	extra    []kv // trailing headers, in Asterisk's order
}

// Event returns the AMI event name of the step ("AgentConnect", …).
func (s *Step) Event() string { return amiNames[s.kind] }

var stateDesc = map[int]string{0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}

func appendHeader(dst []byte, k, v string) []byte {
	dst = append(dst, k...)
	dst = append(dst, ": "...)
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

func appendChanAMI(dst []byte, p string, c *chanSnap) []byte {
	dst = appendHeader(dst, p+"Channel", c.name)
	dst = appendHeader(dst, p+"ChannelState", strconv.Itoa(c.state))
	dst = appendHeader(dst, p+"ChannelStateDesc", stateDesc[c.state])
	dst = appendHeader(dst, p+"CallerIDNum", c.cidNum)
	dst = appendHeader(dst, p+"CallerIDName", c.cidName)
	dst = appendHeader(dst, p+"ConnectedLineNum", c.connNum)
	dst = appendHeader(dst, p+"ConnectedLineName", c.connName)
	dst = appendHeader(dst, p+"Language", "en")
	dst = appendHeader(dst, p+"AccountCode", "")
	dst = appendHeader(dst, p+"Context", c.context)
	dst = appendHeader(dst, p+"Exten", c.exten)
	dst = appendHeader(dst, p+"Priority", strconv.Itoa(c.prio))
	dst = appendHeader(dst, p+"Uniqueid", c.uid)
	dst = appendHeader(dst, p+"Linkedid", c.linked)
	for _, v := range c.vars {
		dst = appendHeader(dst, p+"ChanVariable", v.k+"="+v.v)
	}
	return dst
}

func appendBridgeAMI(dst []byte, b *bridgeSnap) []byte {
	dst = appendHeader(dst, "BridgeUniqueid", b.id)
	dst = appendHeader(dst, "BridgeType", b.typ)
	dst = appendHeader(dst, "BridgeTechnology", bridgeTech(b.typ))
	dst = appendHeader(dst, "BridgeCreator", "<unknown>")
	dst = appendHeader(dst, "BridgeName", "<unknown>")
	dst = appendHeader(dst, "BridgeNumChannels", strconv.Itoa(len(b.members)))
	return appendHeader(dst, "BridgeVideoSourceMode", "none")
}

func bridgeTech(typ string) string {
	if typ == "holding" {
		return "holding_bridge"
	}
	return "simple_bridge"
}

// AppendAMI appends the step as Asterisk writes it on the AMI socket (CRLF lines, blank
// line at the end).
func (s *Step) AppendAMI(dst []byte) []byte {
	dst = appendHeader(dst, "Event", amiNames[s.kind])
	dst = appendHeader(dst, "Privilege", privilege(s.kind))
	switch s.kind {
	case evBridgeCreate, evBridgeDestroy:
		dst = appendBridgeAMI(dst, &s.bridge)
	case evBridgeEnter, evBridgeLeave:
		dst = appendBridgeAMI(dst, &s.bridge)
		dst = appendChanAMI(dst, "", &s.ch)
	case evBlindTransfer:
		dst = appendHeader(dst, "Result", "Success")
		dst = appendChanAMI(dst, "Transferer", &s.ch)
		dst = appendChanAMI(dst, "Transferee", &s.dest)
		dst = appendBridgeAMI(dst, &s.bridge)
	case evAttendedTransfer:
		dst = appendHeader(dst, "Result", "Success")
		dst = appendChanAMI(dst, "OrigTransferer", &s.ch)
		dst = appendChanAMI(dst, "SecondTransferer", &s.dest)
		dst = appendHeader(dst, "DestType", "Bridge")
		dst = appendHeader(dst, "DestBridgeUniqueid", s.bridge.id)
	case evLocalOptimizationBegin, evLocalOptimizationEnd:
		// ch is ;1, dest ;2; Source, DestUniqueId, Success and Id follow in extra.
		dst = appendChanAMI(dst, "LocalOne", &s.ch)
		dst = appendChanAMI(dst, "LocalTwo", &s.dest)
		if s.src != nil {
			dst = appendChanAMI(dst, "Source", s.src)
		}
	default:
		if s.ch.name != "" {
			dst = appendChanAMI(dst, "", &s.ch)
		}
		if s.dest.name != "" {
			dst = appendChanAMI(dst, "Dest", &s.dest)
		}
	}
	for _, h := range s.extra {
		dst = appendHeader(dst, h.k, h.v)
	}
	return append(dst, "\r\n"...)
}

// ARI --------------------------------------------------------------------------------

const ariTimeLayout = "2006-01-02T15:04:05.000-0700"

func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

func appendKey(dst []byte, k string) []byte {
	dst = appendJSONString(dst, k)
	return append(dst, ':')
}

var ariState = map[int]string{0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}

func appendChanARI(dst []byte, c *chanSnap, start time.Time) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, c.uid)
	dst = append(dst, `,"name":`...)
	dst = appendJSONString(dst, c.name)
	dst = append(dst, `,"state":`...)
	dst = appendJSONString(dst, ariState[c.state])
	dst = append(dst, `,"protocol_id":"","caller":{"name":`...)
	dst = appendJSONString(dst, c.cidName)
	dst = append(dst, `,"number":`...)
	dst = appendJSONString(dst, c.cidNum)
	dst = append(dst, `},"connected":{"name":`...)
	dst = appendJSONString(dst, c.connName)
	dst = append(dst, `,"number":`...)
	dst = appendJSONString(dst, c.connNum)
	dst = append(dst, `},"accountcode":"","dialplan":{"context":`...)
	dst = appendJSONString(dst, c.context)
	dst = append(dst, `,"exten":`...)
	dst = appendJSONString(dst, c.exten)
	dst = append(dst, `,"priority":`...)
	dst = strconv.AppendInt(dst, int64(c.prio), 10)
	dst = append(dst, `,"app_name":`...)
	dst = appendJSONString(dst, c.app)
	dst = append(dst, `,"app_data":`...)
	dst = appendJSONString(dst, c.appData)
	dst = append(dst, `},"creationtime":`...)
	dst = appendJSONString(dst, start.Add(c.created).Format(ariTimeLayout))
	dst = append(dst, `,"language":"en"`...)
	if len(c.vars) > 0 {
		dst = append(dst, `,"channelvars":{`...)
		for i, v := range c.vars {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendKey(dst, v.k)
			dst = appendJSONString(dst, v.v)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendBridgeARI(dst []byte, b *bridgeSnap, at time.Time) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, b.id)
	dst = append(dst, `,"technology":`...)
	dst = appendJSONString(dst, bridgeTech(b.typ))
	typ := "mixing"
	if b.typ == "holding" {
		typ = "holding"
	}
	dst = append(dst, `,"bridge_type":`...)
	dst = appendJSONString(dst, typ)
	dst = append(dst, `,"bridge_class":"basic","creator":"","name":"","channels":[`...)
	for i, m := range b.members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, m)
	}
	dst = append(dst, `],"creationtime":`...)
	dst = appendJSONString(dst, at.Format(ariTimeLayout))
	return append(dst, `,"video_mode":"none"}`...)
}

// AppendARI appends the step as one /ari/events JSON message (a subscribeAll
// application named "omlcrm"), or nothing for AMI-only events (queue events, music on
// hold, MixMonitor, Local channel optimisation: ARI shows only its bridge moves and
// hangups). start is the call's start time. It reports whether it appended.
func (s *Step) AppendARI(dst []byte, start time.Time) ([]byte, bool) {
	at := start.Add(s.At)
	head := func(dst []byte, typ string) []byte {
		dst = append(dst, `"type":`...)
		dst = appendJSONString(dst, typ)
		dst = append(dst, `,"timestamp":`...)
		return appendJSONString(dst, at.Format(ariTimeLayout))
	}
	n := len(dst)
	dst = append(dst, '{')
	switch s.kind {
	case evNewchannel:
		dst = head(dst, "ChannelCreated")
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evVarSet:
		dst = append(dst, `"variable":`...)
		dst = appendJSONString(dst, s.extra[0].v)
		dst = append(dst, `,"value":`...)
		dst = appendJSONString(dst, s.extra[1].v)
		dst = append(dst, ',')
		dst = head(dst, "ChannelVarset")
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evNewexten:
		dst = head(dst, "ChannelDialplan")
		dst = append(dst, `,"dialplan_app":`...)
		dst = appendJSONString(dst, s.ch.app)
		dst = append(dst, `,"dialplan_app_data":`...)
		dst = appendJSONString(dst, s.ch.appData)
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evNewstate:
		dst = head(dst, "ChannelStateChange")
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evDialBegin, evDialEnd:
		dst = head(dst, "Dial")
		status, dialstring := "", ""
		for _, h := range s.extra {
			switch h.k {
			case "DialStatus":
				status = h.v
			case "DialString":
				dialstring = h.v
			}
		}
		if s.ch.name != "" {
			dst = append(dst, `,"caller":`...)
			dst = appendChanARI(dst, &s.ch, start)
		}
		dst = append(dst, `,"peer":`...)
		dst = appendChanARI(dst, &s.dest, start)
		if dialstring != "" {
			dst = append(dst, `,"dialstring":`...)
			dst = appendJSONString(dst, dialstring)
		}
		dst = append(dst, `,"dialstatus":`...)
		dst = appendJSONString(dst, status)
	case evBridgeCreate, evBridgeDestroy:
		typ := "BridgeCreated"
		if s.kind == evBridgeDestroy {
			typ = "BridgeDestroyed"
		}
		dst = head(dst, typ)
		dst = append(dst, `,"bridge":`...)
		dst = appendBridgeARI(dst, &s.bridge, at)
	case evBridgeEnter, evBridgeLeave:
		typ := "ChannelEnteredBridge"
		if s.kind == evBridgeLeave {
			typ = "ChannelLeftBridge"
		}
		dst = head(dst, typ)
		dst = append(dst, `,"bridge":`...)
		dst = appendBridgeARI(dst, &s.bridge, at)
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evSoftHangupRequest, evHangupRequest:
		dst = head(dst, "ChannelHangupRequest")
		dst = append(dst, `,"cause":16`...)
		if s.kind == evSoftHangupRequest {
			dst = append(dst, `,"soft":true`...)
		}
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evHangup:
		dst = head(dst, "ChannelDestroyed")
		cause := "16"
		for _, h := range s.extra {
			if h.k == "Cause" {
				cause = h.v
			}
		}
		dst = append(dst, `,"cause":`...)
		dst = append(dst, cause...)
		dst = append(dst, `,"cause_txt":`...)
		dst = appendJSONString(dst, causeText(cause))
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
	case evBlindTransfer:
		dst = head(dst, "BridgeBlindTransfer")
		dst = append(dst, `,"channel":`...)
		dst = appendChanARI(dst, &s.ch, start)
		dst = append(dst, `,"transferee":`...)
		dst = appendChanARI(dst, &s.dest, start)
		dst = append(dst, `,"bridge":`...)
		dst = appendBridgeARI(dst, &s.bridge, at)
		for _, h := range s.extra {
			switch h.k {
			case "Context":
				dst = append(dst, `,"context":`...)
				dst = appendJSONString(dst, h.v)
			case "Extension":
				dst = append(dst, `,"exten":`...)
				dst = appendJSONString(dst, h.v)
			}
		}
		dst = append(dst, `,"result":"Success","is_external":true`...)
	default:
		return dst[:n], false
	}
	dst = append(dst, `,"asterisk_id":"02:fc:00:00:00:01","application":"omlcrm"}`...)
	return dst, true
}

func causeText(c string) string {
	switch c {
	case "0":
		return "Unknown"
	case "16":
		return "Normal Clearing"
	case "17":
		return "User busy"
	}
	return "Unknown"
}

// Timed is one step of an interleaved stream of calls.
type Timed struct {
	At   time.Duration // since the stream's start
	Call *Call
	Step *Step
	// Start is the call's start, since the stream's start.
	Start time.Duration
}

// Interleave merges the steps of calls started gap apart (call i at i*gap) into one
// stream ordered by time; steps of one call keep their order.
func Interleave(cs []*Call, gap time.Duration) []Timed {
	n := 0
	for _, c := range cs {
		n += len(c.Steps)
	}
	out := make([]Timed, 0, n)
	for i, c := range cs {
		start := time.Duration(i) * gap
		for j := range c.Steps {
			out = append(out, Timed{At: start + c.Steps[j].At, Call: c, Step: &c.Steps[j], Start: start})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].At < out[b].At })
	return out
}

// WriteAMI writes the AMI bytes of steps to w.
func WriteAMI(w io.Writer, steps []Timed) error {
	buf := make([]byte, 0, 64<<10)
	for _, t := range steps {
		buf = t.Step.AppendAMI(buf)
		if len(buf) > 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

// WriteARI writes the ARI events of steps to w, one JSON object per line; base is the
// stream's start time.
func WriteARI(w io.Writer, steps []Timed, base time.Time) error {
	buf := make([]byte, 0, 64<<10)
	for _, t := range steps {
		var ok bool
		if buf, ok = t.Step.AppendARI(buf, base.Add(t.Start)); ok {
			buf = append(buf, '\n')
		}
		if len(buf) > 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

// ARILines returns the ARI events of steps, one JSON message each.
func ARILines(steps []Timed, base time.Time) [][]byte {
	var out [][]byte
	for _, t := range steps {
		if b, ok := t.Step.AppendARI(nil, base.Add(t.Start)); ok {
			out = append(out, b)
		}
	}
	return out
}
