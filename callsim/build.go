package callsim

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/calls"
)

// simChan is a channel while the call is built.
type simChan struct {
	chanSnap
	all     map[string]string // every variable set (name without "__")
	inherit []kv              // variables set with "__", in order: copied to channels it creates
	bridge  string
}

type builder struct {
	ids    *IDs
	c      *Call
	now    time.Duration
	omit   map[string]bool
	live   map[*simChan]bool
	chans  []*simChan
	linked string

	// LocalOptimization: the agent's phone, dialed by the member's Local ;2, and the
	// bridge joining them.
	phone       *simChan
	phoneBridge *bridgeSnap
}

func (b *builder) wait(d time.Duration) { b.now += d }

func (b *builder) snap(ch *simChan) chanSnap {
	s := ch.chanSnap
	s.vars = nil
	for _, n := range b.c.ChanVars {
		v := ""
		if !b.omit[strings.ToUpper(n)] {
			v = ch.all[n]
		}
		s.vars = append(s.vars, kv{n, v})
	}
	return s
}

func (b *builder) step(kind stepKind, ch, dest *simChan, extra ...kv) *Step {
	st := Step{At: b.now, kind: kind, extra: extra}
	if ch != nil {
		st.ch = b.snap(ch)
	}
	if dest != nil {
		st.dest = b.snap(dest)
	}
	b.ids.steps = append(b.ids.steps, st)
	b.now += time.Millisecond
	return &b.ids.steps[len(b.ids.steps)-1]
}

func (b *builder) newChan(name, context, exten string, state int, cidNum, cidName string) *simChan {
	ch := &simChan{chanSnap: chanSnap{
		name: name, uid: b.ids.uniqueid(), linked: b.linked, state: state,
		cidNum: cidNum, cidName: cidName, connNum: cidNum, connName: cidName,
		context: context, exten: exten, prio: 1, created: b.now,
	}, all: map[string]string{}}
	if ch.linked == "" {
		// The first channel of a call gives it its Linkedid.
		ch.linked = ch.uid
		b.linked = ch.uid
	}
	b.live[ch] = true
	b.chans = append(b.chans, ch)
	b.step(evNewchannel, ch, nil)
	return ch
}

// localPair creates Local/<exten>@<context>-XXXXXXXX;1 and ;2.
func (b *builder) localPair(exten, context, cidNum, cidName string) (*simChan, *simChan) {
	base := "Local/" + exten + "@" + context + "-" + b.ids.localSuffix()
	one := b.newChan(base+";1", context, exten, 0, cidNum, cidName)
	two := b.newChan(base+";2", context, exten, 4, cidNum, cidName)
	return one, two
}

// set sets a variable; "__NAME" is inherited by channels created later.
func (b *builder) set(ch *simChan, name, value string) {
	bare := strings.TrimPrefix(name, "__")
	ch.all[bare] = value
	if bare != name {
		ch.inherit = append(ch.inherit, kv{name, value})
	}
	if b.omit[strings.ToUpper(bare)] {
		return
	}
	b.step(evVarSet, ch, nil, kv{"Variable", name}, kv{"Value", value})
}

// inheritTo copies the inherited variables of from to a new channel (Asterisk reports
// them with their "__" prefix, last set first).
func (b *builder) inheritTo(from, to *simChan) {
	for i := len(from.inherit) - 1; i >= 0; i-- {
		b.set(to, from.inherit[i].k, from.inherit[i].v)
	}
}

func (b *builder) state(ch *simChan, state int) {
	ch.state = state
	b.step(evNewstate, ch, nil)
}

func (b *builder) exten(ch *simChan, context, exten string, prio int, app, data string) {
	ch.context, ch.exten, ch.prio, ch.app, ch.appData = context, exten, prio, app, data
	if !b.c.Quiet {
		b.step(evNewexten, ch, nil, kv{"Extension", exten}, kv{"Application", app}, kv{"AppData", data})
	}
}

func (b *builder) noise(ch *simChan) {
	if b.c.Quiet {
		return
	}
	b.step(evVarSet, ch, nil, kv{"Variable", "LOCAL(ARG1)"}, kv{"Value", ch.exten})
	b.step(evNewexten, ch, nil, kv{"Extension", ch.exten}, kv{"Application", "Gosub"}, kv{"AppData", "sub-oml-call-vars,s,1"})
	b.step(evVarSet, ch, nil, kv{"Variable", "GOSUB_RETVAL"}, kv{"Value", ""})
}

func (b *builder) bridgeCreate(typ string) *bridgeSnap {
	br := &bridgeSnap{id: b.ids.bridgeID(), typ: typ}
	st := b.step(evBridgeCreate, nil, nil)
	st.bridge = bridgeSnap{id: br.id, typ: typ}
	return br
}

func (b *builder) enter(br *bridgeSnap, ch *simChan) *Step {
	br.members = append(br.members, ch.uid)
	ch.bridge = br.id
	st := b.step(evBridgeEnter, ch, nil)
	st.bridge = bridgeSnap{id: br.id, typ: br.typ, members: append([]string(nil), br.members...)}
	return st
}

func (b *builder) leave(br *bridgeSnap, ch *simChan) {
	for i, m := range br.members {
		if m == ch.uid {
			br.members = append(br.members[:i:i], br.members[i+1:]...)
			break
		}
	}
	ch.bridge = ""
	st := b.step(evBridgeLeave, ch, nil)
	st.bridge = bridgeSnap{id: br.id, typ: br.typ, members: append([]string(nil), br.members...)}
}

func (b *builder) destroy(br *bridgeSnap) {
	st := b.step(evBridgeDestroy, nil, nil)
	st.bridge = bridgeSnap{id: br.id, typ: br.typ}
}

func (b *builder) hangup(ch *simChan, cause string) {
	if !b.c.Quiet {
		b.step(evSoftHangupRequest, ch, nil, kv{"Cause", cause})
	}
	b.step(evHangup, ch, nil, kv{"Cause", cause}, kv{"Cause-txt", causeText(cause)})
	delete(b.live, ch)
}

func (b *builder) dial(caller, peer *simChan, dialstring, status string) {
	if status == "" {
		b.step(evDialBegin, caller, peer, kv{"DialString", dialstring})
		return
	}
	b.step(evDialEnd, caller, peer, kv{"DialStatus", status})
}

// Build generates one call. ids allocates its unique ids; calls built from one IDs can
// be interleaved.
func Build(ids *IDs, p Params) *Call {
	c := &Call{Params: p}
	ids.steps = ids.steps[:0] // empty unless an earlier Build panicked half-way
	b := &builder{ids: ids, c: c, omit: map[string]bool{}, live: map[*simChan]bool{}}
	for _, n := range p.Omit {
		b.omit[strings.ToUpper(strings.TrimPrefix(n, "__"))] = true
	}
	c.defaults(ids)
	if c.Scenario == LocalOptimization {
		c.AgentPJSIP = false // the scenario is about the Local member channel
	}
	switch c.Scenario {
	case Preview, Manual:
		b.clickToCall()
	default:
		b.queueCall()
	}
	c.Duration = b.now
	c.Steps = slices.Clone(ids.steps)
	clear(ids.steps) // no call's strings kept alive by the working space
	ids.steps = ids.steps[:0]
	for _, ch := range b.chans {
		c.Channels = append(c.Channels, ChannelVars{Name: ch.name, Uniqueid: ch.uid, Vars: ch.all})
	}
	return c
}

func (c *Call) defaults(ids *IDs) {
	if c.Scenario == 0 {
		c.Scenario = InboundQueue
	}
	if c.Agent.ID == 0 {
		c.Agent.ID = 1
	}
	if c.SecondAgent.ID == 0 {
		c.SecondAgent.ID = c.Agent.ID + 100
	}
	if c.CampaignID == 0 {
		switch c.Scenario {
		case DialerQueue:
			c.CampaignID = 9
		case Preview:
			c.CampaignID = 115
		case Manual:
			c.CampaignID = 11
		default:
			c.CampaignID = 7
		}
	}
	if c.CampaignType == 0 {
		switch c.Scenario {
		case Manual:
			c.CampaignType = 1
		case DialerQueue:
			c.CampaignType = 2
		case Preview:
			c.CampaignType = 4
		default:
			c.CampaignType = 3
		}
	}
	if c.TransferCamp == 0 {
		c.TransferCamp = 9
	}
	if c.Phone == "" {
		c.Phone = strconv.Itoa(3415550000 + ids.seq%10000)
	}
	if c.ContactID == "" {
		c.ContactID = "-1"
	}
	if c.Dialplan == nil {
		c.Dialplan = []Var{{"OMLCRM_ticket", "T-" + strconv.Itoa(1000+ids.seq)}, {"OMLCRMORIGIN", "web ñ & más"}}
	}
	if c.Talk == 0 {
		c.Talk = 8 * time.Second
	}
}

func (c *Call) recordingName(uid string) string {
	if c.Recording != "" {
		return c.Recording
	}
	prefix := map[Scenario]string{DialerQueue: "dialer", Preview: "prev", Manual: "mc"}[c.Scenario]
	if prefix == "" {
		prefix = "in"
	}
	date := time.Unix(0, 0).UTC().Format("20060102")
	if sec, _, ok := strings.Cut(uid, "."); ok {
		if n, err := strconv.ParseInt(sec, 10, 64); err == nil {
			date = time.Unix(n, 0).UTC().Format("20060102")
		}
	}
	name := prefix + "-" + strconv.Itoa(c.CampaignID) + "-" + date
	if prefix == "prev" || prefix == "mc" {
		name += "-" + strconv.Itoa(c.Agent.ID)
	}
	return name + "-" + c.Phone + "-" + uid
}

// motherVars runs the equivalent of sub-oml-call-vars on the mother channel.
func (b *builder) motherVars(m *simChan) {
	c := b.c
	c.CallID = m.uid
	set1 := c.Naming != NamingCallID
	set2 := c.Naming != NamingOML2
	b.noise(m)
	if set2 {
		b.set(m, "__OMLCALLID", m.uid)
	}
	if set1 {
		b.set(m, "__OMLUNIQUEID", m.uid)
	}
	b.set(m, "__OMLMOTHERCHAN", m.name)
	b.set(m, "__OMLCAMPID", strconv.Itoa(c.CampaignID))
	b.set(m, "__OMLCAMPTYPE", strconv.Itoa(c.CampaignType))
	b.set(m, "__OMLCALLTYPEID", strconv.Itoa(c.CampaignType))
	b.set(m, "__OMLOUTNUM", c.Phone)
	if set2 {
		b.set(m, "__OMLCONTACTID", c.ContactID)
	}
	if set1 {
		b.set(m, "__OMLCODCLI", c.ContactID)
	}
	names := make([]string, 0, len(c.Dialplan))
	for _, v := range c.Dialplan {
		b.set(m, "__"+v.Name, v.Value)
		names = append(names, v.Name)
	}
	if len(names) > 0 {
		b.set(m, "OMLCUSTOMDIALPLANVARS", strings.Join(names, "&"))
	}
	rec := c.recordingName(m.uid)
	if set2 {
		b.set(m, "__OMLRECFILENAME", rec)
	}
	if set1 {
		b.set(m, "__OMLCAMPRECFILENAME", rec)
	}
	b.set(m, "MIXMONITOR_FILENAME", "/var/spool/asterisk/monitor/"+rec+".wav")
	b.step(evMixMonitorStart, m, nil)
}

// agentLeg creates the channel a queue or a transfer dials for agent a, inheriting
// from parent; it returns the leg in the bridge and its Local ;2 (nil for PJSIP).
func (b *builder) agentLeg(a Agent, parent *simChan, context string) (*simChan, *simChan) {
	var one, two *simChan
	if b.c.AgentPJSIP {
		one = b.newChan("PJSIP/"+a.ext()+"-"+b.ids.localSuffix(), context, parent.exten, 0, parent.cidNum, parent.cidName)
	} else {
		one, two = b.localPair(a.ext(), "oml-agent", parent.cidNum, parent.cidName)
		one.exten = parent.exten
	}
	b.inheritTo(parent, one)
	if two != nil {
		b.inheritTo(parent, two)
	}
	if !b.c.NoAgentID {
		// The queue's pre-dial handler sets OMLAGENTID on the agent's leg.
		b.set(one, "OMLAGENTID", strconv.Itoa(a.ID))
		if two != nil {
			b.set(two, "OMLAGENTID", strconv.Itoa(a.ID))
		}
	}
	return one, two
}

func (b *builder) expect(agent, cust *simChan, a Agent, campaign int) {
	c := b.c
	dp := make(map[string]string, len(c.Dialplan))
	for _, v := range c.Dialplan {
		dp[v.Name] = v.Value
	}
	c.Expected = append(c.Expected, calls.Connected{
		CallID:          c.CallID,
		LinkedID:        c.LinkedID,
		AgentID:         a.ID,
		AgentChannel:    agent.name,
		CustomerChannel: cust.name,
		CampaignID:      campaign,
		CampaignType:    c.CampaignType,
		Phone:           c.Phone,
		ContactID:       c.ContactID,
		RecordingFile:   c.recordingName(c.CallID) + ".wav",
		Dialplan:        dp,
	})
}

func (b *builder) snapshotLive() {
	b.c.Live = b.c.Live[:0]
	for _, ch := range b.chans {
		if !b.live[ch] {
			continue
		}
		b.c.Live = append(b.c.Live, LiveChannel{
			Name: ch.name, Uniqueid: ch.uid, Linkedid: ch.linked, Context: ch.context, Exten: ch.exten,
			Application: ch.app, ApplicationData: ch.appData, BridgeID: ch.bridge, State: ch.state,
			CallerIDNum: ch.cidNum, CallerIDName: ch.cidName,
		})
	}
}

func member(a Agent) string { return strconv.Itoa(a.ID) + "_agent" + strconv.Itoa(a.ID) }

// iface is the queue member's interface: a Local channel that does not optimise away
// (/n), except in LocalOptimization.
func (b *builder) iface(a Agent) string {
	if b.c.Scenario == LocalOptimization {
		return "Local/" + a.ext() + "@oml-agent"
	}
	return "Local/" + a.ext() + "@oml-agent/n"
}

// queueConnect dials agent a from the queue and connects it; it returns the agent's
// legs and the bridge.
func (b *builder) queueConnect(cust *simChan, a Agent, queue string, campaign int, waited time.Duration) (*simChan, *simChan, *bridgeSnap) {
	one, two := b.agentLeg(a, cust, "oml-agent")
	q := []kv{{"Queue", queue}, {"Interface", b.iface(a)}, {"MemberName", member(a)}}
	b.step(evAgentCalled, cust, one, q...)
	b.dial(cust, one, b.iface(a), "")
	one.app, one.appData = "AppQueue", "(Outgoing Line)"
	b.wait(time.Second)
	switch {
	case two != nil && b.c.Scenario == LocalOptimization:
		b.agentPhone(two, a)
	case two != nil:
		b.state(two, 6)
	}
	b.state(one, 6)
	b.dial(cust, one, "", "ANSWER")
	b.step(evMusicOnHoldStop, cust, nil)
	b.step(evQueueCallerLeave, cust, nil, kv{"Queue", queue}, kv{"Position", "1"}, kv{"Count", "0"})
	hold := strconv.Itoa(int((waited + time.Second) / time.Second))
	b.step(evAgentConnect, cust, one, append(q, kv{"HoldTime", hold}, kv{"RingTime", "1"})...)
	b.expect(one, cust, a, campaign)
	br := b.bridgeCreate("basic")
	b.enter(br, one)
	b.enter(br, cust)
	if !b.c.Quiet {
		b.step(evVarSet, one, nil, kv{"Variable", "BRIDGEPEER"}, kv{"Value", cust.name})
		b.step(evVarSet, cust, nil, kv{"Variable", "BRIDGEPEER"}, kv{"Value", one.name})
	}
	return one, two, br
}

func (b *builder) queueCall() {
	c := b.c
	cust, cust2 := b.localPair(c.Phone, "oml-customer", c.Phone, "Cliente "+c.Phone)
	b.linked = cust.uid
	c.LinkedID = cust.uid
	// The trunk side: the Originate's own dial (no Channel header), then the answer.
	b.dial(nil, cust, c.Phone+"@oml-customer/n", "")
	b.state(cust2, 6)
	b.state(cust, 6)
	b.dial(nil, cust, "", "ANSWER")
	did, queue := "7000", "q7"
	if c.Scenario == DialerQueue {
		did, queue = "9000", "q9"
	}
	b.exten(cust, "oml-inbound", did, 1, "Gosub", "sub-oml-call-vars,s,1")
	b.motherVars(cust)
	b.exten(cust, "oml-inbound", did, 4, "Queue", queue+",tb(sub-oml-agent-leg^s^1),,,60")
	b.step(evQueueCallerJoin, cust, nil, kv{"Queue", queue}, kv{"Position", "1"}, kv{"Count", "1"})
	b.step(evMusicOnHoldStart, cust, nil, kv{"Class", "default"})

	if c.Scenario == Abandon {
		one, two := b.agentLeg(c.Agent, cust, "oml-agent")
		q := []kv{{"Queue", queue}, {"Interface", b.iface(c.Agent)}, {"MemberName", member(c.Agent)}}
		b.step(evAgentCalled, cust, one, q...)
		b.dial(cust, one, b.iface(c.Agent), "")
		b.wait(5 * time.Second)
		b.step(evHangupRequest, cust2, nil, kv{"Cause", "16"})
		b.dial(cust, one, "", "CANCEL")
		b.hangup(one, "0")
		if two != nil {
			b.hangup(two, "0")
		}
		b.step(evQueueCallerAbandon, cust, nil, kv{"Queue", queue}, kv{"Position", "1"}, kv{"OriginalPosition", "1"}, kv{"HoldTime", "5"})
		b.step(evQueueCallerLeave, cust, nil, kv{"Queue", queue}, kv{"Position", "1"}, kv{"Count", "0"})
		b.hangup(cust2, "16")
		b.step(evMusicOnHoldStop, cust, nil)
		b.hangup(cust, "16")
		return
	}

	one, two, br := b.queueConnect(cust, c.Agent, queue, c.CampaignID, 0)
	final := c.Agent // the agent on the call when it ends
	b.snapshotLive()
	b.wait(c.Talk / 2)

	switch c.Scenario {
	case HoldUnhold:
		b.step(evHold, one, nil, kv{"MusicClass", "default"})
		b.leave(br, cust)
		hb := b.bridgeCreate("holding")
		b.enter(hb, cust)
		b.step(evMusicOnHoldStart, cust, nil, kv{"Class", "default"})
		b.wait(3 * time.Second)
		b.step(evMusicOnHoldStop, cust, nil)
		b.leave(hb, cust)
		b.destroy(hb)
		b.enter(br, cust)
		b.step(evUnhold, one, nil)
	case LocalOptimization:
		b.optimizeAway(br, one, two)
		one, two = b.phone, nil
		b.snapshotLive()
	case BlindTransfer:
		tr := b.step(evBlindTransfer, one, cust, kv{"IsExternal", "Yes"}, kv{"Context", "oml-transfer"}, kv{"Extension", "9000"})
		tr.bridge = bridgeSnap{id: br.id, typ: br.typ, members: append([]string(nil), br.members...)}
		b.step(evAgentComplete, cust, one, kv{"Queue", queue}, kv{"Interface", b.iface(c.Agent)}, kv{"MemberName", member(c.Agent)},
			kv{"HoldTime", "1"}, kv{"TalkTime", strconv.Itoa(int(c.Talk / 2 / time.Second))}, kv{"Reason", "transfer"})
		b.leave(br, cust)
		b.set(cust, "__OMLCAMPTRANSFERID", strconv.Itoa(c.TransferCamp))
		b.set(cust, "__OMLTRANSFER", "blind")
		b.leave(br, one)
		b.destroy(br)
		b.hangup(one, "16")
		if two != nil {
			b.hangup(two, "16")
		}
		b.exten(cust, "oml-transfer", "9000", 1, "Queue", "q9,t,,,60")
		b.step(evQueueCallerJoin, cust, nil, kv{"Queue", "q9"}, kv{"Position", "1"}, kv{"Count", "1"})
		one, two, br = b.queueConnect(cust, c.SecondAgent, "q9", c.TransferCamp, 0)
		final, queue = c.SecondAgent, "q9"
		b.snapshotLive()
	case AttendedTransfer:
		// The agent parks the customer (music on hold) and calls the second agent; the
		// consultation leg is requested by the agent's channel, so it shares the call's
		// Linkedid and inherits its variables.
		b.leave(br, one)
		b.step(evMusicOnHoldStart, cust, nil, kv{"Class", "default"})
		b2one, b2two := b.agentLeg(c.SecondAgent, one, "oml-agent")
		b.dial(one, b2one, b2one.name, "")
		b.wait(time.Second)
		if b2two != nil {
			b.state(b2two, 6)
		}
		b.state(b2one, 6)
		b.dial(one, b2one, "", "ANSWER")
		cb := b.bridgeCreate("basic")
		b.enter(cb, one)
		b.enter(cb, b2one)
		b.wait(2 * time.Second)
		at := b.step(evAttendedTransfer, one, one)
		at.bridge = bridgeSnap{id: br.id, typ: br.typ}
		b.step(evMusicOnHoldStop, cust, nil)
		b.leave(cb, one)
		b.leave(cb, b2one)
		b.destroy(cb)
		b.enter(br, b2one)
		b.expect(b2one, cust, c.SecondAgent, c.CampaignID)
		b.step(evAgentComplete, cust, one, kv{"Queue", queue}, kv{"Interface", b.iface(c.Agent)}, kv{"MemberName", member(c.Agent)},
			kv{"HoldTime", "1"}, kv{"TalkTime", "4"}, kv{"Reason", "transfer"})
		b.hangup(one, "16")
		if two != nil {
			b.hangup(two, "16")
		}
		one, two, final = b2one, b2two, c.SecondAgent
		b.snapshotLive()
	}

	b.wait(c.Talk / 2)
	// The customer hangs up.
	b.step(evHangupRequest, cust2, nil, kv{"Cause", "16"})
	b.hangup(cust2, "16")
	if c.Scenario != AttendedTransfer {
		b.step(evAgentComplete, cust, one, kv{"Queue", queue}, kv{"Interface", b.iface(final)}, kv{"MemberName", member(final)},
			kv{"HoldTime", "1"}, kv{"TalkTime", strconv.Itoa(int(c.Talk / time.Second))}, kv{"Reason", "caller"})
	}
	b.leave(br, cust)
	b.leave(br, one)
	b.destroy(br)
	b.hangup(one, "16")
	if two != nil {
		b.hangup(two, "16")
	}
	b.hangup(cust, "16")
}

// agentPhone: the member's Local ;2 runs the agent dialplan, which dials the agent's
// phone; the phone answers and ;2 is bridged with it (then ;2 answers ;1).
func (b *builder) agentPhone(two *simChan, a Agent) {
	dialstring := "PJSIP/" + a.ext()
	b.exten(two, "oml-agent", a.ext(), 1, "Dial", dialstring+",,tT")
	phone := b.newChan("PJSIP/"+a.ext()+"-"+b.ids.localSuffix(), "oml-agent", a.ext(), 0, two.cidNum, two.cidName)
	b.inheritTo(two, phone)
	phone.app, phone.appData = "AppDial", "(Outgoing Line)"
	b.dial(two, phone, dialstring, "")
	b.state(phone, 6)
	b.dial(two, phone, "", "ANSWER")
	b.state(two, 6)
	pb := b.bridgeCreate("basic")
	b.enter(pb, two)
	b.enter(pb, phone)
	b.phone, b.phoneBridge = phone, pb
}

// optimizeAway: Asterisk optimises the Local pair one/two out of the media path. The
// agent's phone is swapped into the customer's bridge br in place of one (BridgeEnter
// with SwapUniqueid), the phone's bridge with two dissolves, and both halves hang up.
// app_queue follows the swap: its later AgentComplete names the phone.
func (b *builder) optimizeAway(br *bridgeSnap, one, two *simChan) {
	phone, pb := b.phone, b.phoneBridge
	id := b.ids.optimizationID()
	begin := b.step(evLocalOptimizationBegin, one, two, kv{"DestUniqueId", one.uid}, kv{"Id", id})
	src := b.snap(phone)
	begin.src = &src
	b.leave(pb, phone)
	b.enter(br, phone).extra = []kv{{"SwapUniqueid", one.uid}}
	b.leave(br, one)
	b.step(evLocalOptimizationEnd, one, two, kv{"Success", "Yes"}, kv{"Id", id})
	b.leave(pb, two)
	b.destroy(pb)
	b.hangup(one, "16")
	b.hangup(two, "16")
}

// clickToCall: the agent's phone is originated first (the mother), then it dials the
// customer (Preview, Manual).
func (b *builder) clickToCall() {
	c := b.c
	a := c.Agent
	var ag, ag2 *simChan
	if c.AgentPJSIP {
		ag = b.newChan("PJSIP/"+a.ext()+"-"+b.ids.localSuffix(), "oml-click2call", c.Phone, 0, a.ext(), "Agent "+strconv.Itoa(a.ID))
	} else {
		ag, ag2 = b.localPair(a.ext(), "oml-agent", a.ext(), "Agent "+strconv.Itoa(a.ID))
	}
	b.linked = ag.uid
	c.LinkedID = ag.uid
	b.dial(nil, ag, a.ext()+"@oml-agent/n", "")
	if ag2 != nil {
		b.state(ag2, 6)
	}
	b.state(ag, 6)
	b.dial(nil, ag, "", "ANSWER")
	if !c.NoAgentID {
		b.set(ag, "__OMLAGENTID", strconv.Itoa(a.ID))
	}
	b.exten(ag, "oml-click2call", c.Phone, 1, "Gosub", "sub-oml-call-vars,s,1")
	b.motherVars(ag)
	b.exten(ag, "oml-click2call", c.Phone, 4, "Dial", "Local/"+c.Phone+"@oml-customer/n,30")
	cust, cust2 := b.localPair(c.Phone, "oml-customer", c.Phone, "Cliente "+c.Phone)
	b.inheritTo(ag, cust)
	b.inheritTo(ag, cust2)
	cust.app, cust.appData = "AppDial", "(Outgoing Line)"
	b.dial(ag, cust, "Local/"+c.Phone+"@oml-customer/n", "")
	b.wait(time.Second)
	b.state(cust2, 6)
	b.state(cust, 6)
	b.dial(ag, cust, "", "ANSWER")
	br := b.bridgeCreate("basic")
	b.enter(br, cust)
	b.enter(br, ag)
	b.expect(ag, cust, a, c.CampaignID)
	b.snapshotLive()
	b.wait(c.Talk)
	// The agent hangs up.
	if ag2 != nil {
		b.hangup(ag2, "16")
	}
	b.step(evHangupRequest, ag, nil, kv{"Cause", "16"})
	b.leave(br, ag)
	b.leave(br, cust)
	b.destroy(br)
	b.hangup(ag, "16")
	b.hangup(cust, "16")
	b.hangup(cust2, "16")
}
