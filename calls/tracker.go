package calls

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Output receives the tracker's facts. Calls are serialised (never concurrent) and come
// in order: a call's Ended always after every Connected of that call. They are made
// while the tracker holds its lock, so an Output must return quickly (hand the fact to
// a bounded queue) and must not call back into the Tracker.
type Output interface {
	Connected(Connected)
	Ended(Ended)
}

// OutputFuncs adapts two functions to Output; a nil function drops that fact.
type OutputFuncs struct {
	OnConnected func(Connected)
	OnEnded     func(Ended)
}

// Connected implements Output.
func (o OutputFuncs) Connected(c Connected) {
	if o.OnConnected != nil {
		o.OnConnected(c)
	}
}

// Ended implements Output.
func (o OutputFuncs) Ended(e Ended) {
	if o.OnEnded != nil {
		o.OnEnded(e)
	}
}

// Resolver finds an agent's OMniLeads id from its SIP extension (the daemon resolves
// it through the catalog). It is only called off the event path, by Run's workers.
type Resolver interface {
	AgentByExtension(ctx context.Context, extension string) (agentID int, err error)
}

// VarReader reads one channel variable on demand (AMI Getvar, ARI GET
// /channels/{id}/variable). An unset variable is "" with a nil error or an error; both
// count as "still missing". It is only called off the event path, by Run's workers.
type VarReader interface {
	Getvar(ctx context.Context, ch ChannelRef, name string) (string, error)
}

// Options configure a Tracker. Only Output is required.
type Options struct {
	Output Output
	// Resolver turns an agent channel's extension into the agent id when neither
	// OMLAGENTID nor the queue MemberName says it. Nil: AgentID stays 0.
	Resolver Resolver
	// VarReader fetches variables still unknown at connect time. Nil: emit at once
	// with Missing filled in.
	VarReader VarReader
	// DialplanPrefixes: variables whose name starts with one of these
	// (case-insensitively) are dialplan data. Default ["Omlcrm"].
	DialplanPrefixes []string
	// DialplanVars are dialplan-data variable names worth a lazy read when absent at
	// connect time (e.g. the dialplan parameter sources of the catalog). SetDialplanVars
	// replaces them while running.
	DialplanVars []string
	// MaxChannels caps the channels tracked; beyond it the oldest channel (an orphan
	// whose hangup was missed) is dropped with a warning. Default 50,000.
	MaxChannels int
	// LazyVarTimeout bounds the lazy reads of one Connected. Default 1 s.
	LazyVarTimeout time.Duration
	// LazyWorkers run the lazy reads (default 4); LazyQueue bounds the connects
	// waiting for them (default 4,096; when full a Connected is emitted at once with
	// Missing filled in).
	LazyWorkers int
	LazyQueue   int
	// EmittedTTL and EmittedMax bound the memory of emitted (call, agent) pairs used to
	// never emit a Connected twice (also across reconnects). Defaults 6 h and 262,144.
	EmittedTTL time.Duration
	EmittedMax int
	Logger     zerolog.Logger
	// Registerer registers the tracker's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Lister lists the live channels for Resync (AMILister, ARILister). With it, Run
	// resynchronises whenever RequestResync is called (from the client's OnState on
	// connect).
	Lister Lister
	// Now is the clock for events without a time stamp; default time.Now.
	Now func() time.Time
}

// Lister returns the channels alive now (CoreShowChannels, GET /ari/channels).
type Lister func(ctx context.Context) ([]SnapshotChannel, error)

// Stats is the size of the tracked state.
type Stats struct {
	Channels, Calls, Bridges int
	Pending                  int // connects waiting for lazy reads
	Emitted                  int // remembered (call, agent) keys
	Resyncs                  int // resynchronisations applied
}

// role is what a channel is in a call, when known for certain.
type role uint8

const (
	roleUnknown role = iota
	roleAgent
	roleCustomer
)

type channel struct {
	id, name, linked string
	grp              *group
	bridge           *bridge
	vars             []varEntry
	role             role
	ownAgentID       bool   // OMLAGENTID set on it without "__" (queue/Stasis agent leg)
	dialPeer         string // id of the channel it dialed (answered)
	dialCaller       string // id of the channel that dialed it
	memberName       string
	holdTime         time.Duration
	hasHold          bool
	prev, next       *channel // creation order, oldest first (eviction)
	seq              uint64   // creation number (Resync leaves newer channels alone)
}

// channelVars is the capacity of a channel's variables, allocated with its first one:
// the legs of the real captures that have any keep 11 or 12 (the OML* set,
// MIXMONITOR_FILENAME), which append would reach in five allocations and copies.
const channelVars = 16

// group is one call: the channels sharing a Linkedid (AMI) or related by Local pairs,
// Dial and OMLCALLID (ARI).
type group struct {
	key           string
	origin        string // oldest channel's id: the Linkedid Asterisk would report
	callID        string
	callIDFromVar bool
	chans         []*channel
	start, endAt  time.Time
	outbox        []*pending
	retired       bool
	j             *journal // answer, agents, hang-up, rings (phases.go); nil until needed
}

type bridge struct {
	id      string
	members []*channel
}

// pending is a Connected waiting in its call's outbox (for lazy reads, or behind one
// that is).
type pending struct {
	c     Connected
	ready bool
	drop  bool // the lazy reads found it a duplicate (roles.go)
	grp   *group
	leg   *AgentLeg // its entry in the call's journal (phases.go)
}

// Tracker is the call state machine. Feed it with HandleAMI, HandleARI or Handle from
// one goroutine (the client's event handler); Run must be running for lazy reads.
type Tracker struct {
	out          Output
	resolver     Resolver
	vars         VarReader
	prefixes     []string
	dialplanVars atomic.Pointer[[]string] // Options.DialplanVars, replaced by SetDialplanVars
	maxChannels  int
	lazyTimeout  time.Duration
	workers      int
	log          zerolog.Logger
	now          func() time.Time
	m            *metrics

	jobs   chan *lazyJob
	lister Lister
	resync chan struct{}

	mu       sync.Mutex
	chans    map[string]*channel
	byName   map[string]*channel
	groups   map[string]*group
	bridges  map[string]*bridge
	callIDs  map[string]int // live groups per call id: Ended when it drops to 0
	oldest   *channel
	newest   *channel
	lastCh   *channel // the channel ensure found last: a dialplan sets its variables in a row
	npending int
	emitted  *emittedSet
	stopped  bool
	running  bool
	seq      uint64              // channels created so far
	tomb     map[string]struct{} // channels hung up since Mark (nil: no resync under way)
	resyncs  int
	spelled  map[string]string // upper-case name → the dialplan's spelling (allvars.go)
	varSets  varSetWatch       // diagnostics.go
	// resyncing: ApplySnapshot is examining bridged pairs (connects are recovered ones)
	resyncing bool

	amiScratch, ariScratch Event // adapters fill these under mu: no allocation per event

	closeOnce sync.Once
	closed    chan struct{}
}

// NewTracker returns a Tracker; it fails when Output is missing.
func NewTracker(opts Options) (*Tracker, error) {
	if opts.Output == nil {
		return nil, errors.New("calls: Options.Output is required")
	}
	if len(opts.DialplanPrefixes) == 0 {
		opts.DialplanPrefixes = []string{"Omlcrm"}
	}
	for _, p := range opts.DialplanPrefixes {
		if p == "" {
			return nil, errors.New("calls: Options.DialplanPrefixes holds an empty prefix (it would make every variable dialplan data)")
		}
	}
	if opts.MaxChannels <= 0 {
		opts.MaxChannels = 50000
	}
	if opts.LazyVarTimeout <= 0 {
		opts.LazyVarTimeout = time.Second
	}
	if opts.LazyWorkers <= 0 {
		opts.LazyWorkers = 4
	}
	if opts.LazyQueue <= 0 {
		opts.LazyQueue = 4096
	}
	if opts.EmittedTTL <= 0 {
		opts.EmittedTTL = 6 * time.Hour
	}
	if opts.EmittedMax <= 0 {
		opts.EmittedMax = 1 << 18
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &Tracker{
		out:         opts.Output,
		resolver:    opts.Resolver,
		vars:        opts.VarReader,
		prefixes:    opts.DialplanPrefixes,
		maxChannels: opts.MaxChannels,
		lazyTimeout: opts.LazyVarTimeout,
		workers:     opts.LazyWorkers,
		log:         opts.Logger,
		now:         opts.Now,
		jobs:        make(chan *lazyJob, opts.LazyQueue),
		lister:      opts.Lister,
		resync:      make(chan struct{}, 1),
		chans:       make(map[string]*channel),
		byName:      make(map[string]*channel),
		groups:      make(map[string]*group),
		bridges:     make(map[string]*bridge),
		callIDs:     make(map[string]int),
		emitted:     newEmittedSet(opts.EmittedTTL, opts.EmittedMax),
		closed:      make(chan struct{}),
	}
	t.SetDialplanVars(opts.DialplanVars)
	m, err := newMetrics(opts.Registerer, t)
	if err != nil {
		return nil, err
	}
	t.m = m
	return t, nil
}

// Stats returns the size of the tracked state.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{
		Channels: len(t.chans),
		Calls:    len(t.groups),
		Bridges:  len(t.bridges),
		Pending:  t.npending,
		Emitted:  t.emitted.len(),
		Resyncs:  t.resyncs,
	}
}

// Handle feeds one source-agnostic event.
func (t *Tracker) Handle(ev Event) {
	t.mu.Lock()
	t.handleLocked(&ev)
	t.mu.Unlock()
}

func (t *Tracker) handleLocked(ev *Event) {
	if ev.At.IsZero() && ev.Kind != KindVar {
		ev.At = t.now() // a VarSet rarely needs a time: ensure reads the clock if it does
	}
	t.m.events.Inc()
	switch ev.Kind {
	case KindChannel:
		if ch := t.ensure(ev.Channel, ev.At); ch != nil {
			t.applyVars(ch, ev.Vars)
		}
	case KindVar:
		ch := t.ensure(ev.Channel, ev.At)
		if ch == nil {
			return
		}
		t.applyVars(ch, ev.Vars)
		t.setVar(ch, ev.Name, ev.Value)
	case KindDialAnswer:
		caller, peer := t.ensure(ev.Channel, ev.At), t.ensure(ev.Peer, ev.At)
		if caller == nil || peer == nil || caller == peer {
			return
		}
		t.applyVars(caller, ev.Vars)
		t.applyVars(peer, ev.PeerVars)
		caller.dialPeer, peer.dialCaller = peer.id, caller.id
		if caller.linked == "" || peer.linked == "" {
			t.merge(caller.grp, peer.grp)
		}
		t.connectIfBridged(caller, peer, ev.At)
	case KindAgentConnect:
		cust, agent := t.ensure(ev.Channel, ev.At), t.ensure(ev.Peer, ev.At)
		if cust == nil || agent == nil || cust == agent {
			return
		}
		t.applyVars(cust, ev.Vars)
		t.applyVars(agent, ev.PeerVars)
		agent.role = roleAgent
		if cust.role == roleUnknown {
			cust.role = roleCustomer
		}
		if ev.MemberName != "" {
			agent.memberName = strings.Clone(ev.MemberName)
		}
		agent.holdTime, agent.hasHold = ev.HoldTime, true
		cust.dialPeer, agent.dialCaller = agent.id, cust.id
		t.connectIfBridged(cust, agent, ev.At)
	case KindBridgeEnter:
		ch := t.ensure(ev.Channel, ev.At)
		if ch == nil || ev.Bridge == "" {
			return
		}
		t.applyVars(ch, ev.Vars)
		t.enterBridge(ch, ev.Bridge, ev.At)
	case KindBridgeLeave:
		ch := t.chans[ev.Channel.ID]
		if ch == nil {
			return
		}
		if ch.bridge != nil && ch.bridge.id == ev.Bridge {
			t.leaveBridge(ch)
		}
	case KindHangup:
		if ch := t.chans[ev.Channel.ID]; ch != nil {
			t.noteHangup(ch, ev)
			t.removeChannel(ch, ev.At)
		}
	case KindAgentCalled:
		t.agentCalled(ev)
	case KindDialEnd:
		t.dialEnded(ev)
	}
}

// ensure returns the channel ref names, creating it (and its call) when new.
func (t *Tracker) ensure(ref ChannelRef, at time.Time) *channel {
	if ref.ID == "" {
		return nil
	}
	ch := t.lastCh
	if ch == nil || ch.id != ref.ID {
		ch = t.chans[ref.ID]
	}
	if ch != nil {
		t.lastCh = ch
		if ref.Name != "" && ref.Name != ch.name {
			t.rename(ch, ref.Name)
		}
		if ref.LinkedID != "" && ref.LinkedID != ch.linked {
			// Asterisk moved the channel to another call (Linkedid change).
			t.detach(ch, at)
			ch.linked = strings.Clone(ref.LinkedID)
			t.attach(ch, at)
		}
		return ch
	}
	if at.IsZero() {
		at = t.now()
	}
	if len(t.chans) >= t.maxChannels {
		t.evictOldest(at)
	}
	t.seq++
	// One copy holds the three strings (they live as long as the channel).
	var b strings.Builder
	b.Grow(len(ref.ID) + len(ref.LinkedID) + len(ref.Name))
	b.WriteString(ref.ID)
	b.WriteString(ref.LinkedID)
	b.WriteString(ref.Name)
	all := b.String()
	id, linked, name := all[:len(ref.ID)], all[len(ref.ID):len(ref.ID)+len(ref.LinkedID)], all[len(ref.ID)+len(ref.LinkedID):]
	ch = &channel{id: id, linked: linked, seq: t.seq}
	if name != "" {
		ch.name = name
		t.byName[ch.name] = ch
	}
	t.chans[ch.id] = ch
	t.lastCh = ch
	if t.newest == nil {
		t.oldest, t.newest = ch, ch
	} else {
		ch.prev, t.newest.next, t.newest = t.newest, ch, ch
	}
	t.attach(ch, at)
	return ch
}

func (t *Tracker) rename(ch *channel, name string) {
	if ch.name != "" && t.byName[ch.name] == ch {
		delete(t.byName, ch.name)
	}
	ch.name = strings.Clone(name)
	t.byName[ch.name] = ch
}

// attach puts ch in its call: by Linkedid when the source gives one, else with its
// Local sibling, else in a call of its own.
func (t *Tracker) attach(ch *channel, at time.Time) {
	var g *group
	if ch.linked != "" {
		g = t.groups[ch.linked]
		if g == nil {
			g = t.newGroup(ch.linked, at)
		}
	} else if sib := t.sibling(ch); sib != nil {
		g = sib.grp
	} else {
		g = t.newGroup(ch.id, at)
	}
	ch.grp = g
	g.chans = append(g.chans, ch)
}

func (t *Tracker) newGroup(key string, at time.Time) *group {
	g := &group{key: key, origin: key, callID: key, start: at}
	t.groups[key] = g
	t.callIDs[key]++
	return g
}

// detach takes ch out of its call; a call left without channels ends.
func (t *Tracker) detach(ch *channel, at time.Time) {
	g := ch.grp
	if g == nil {
		return
	}
	for i, c := range g.chans {
		if c == ch {
			last := len(g.chans) - 1
			g.chans[i] = g.chans[last]
			g.chans[last] = nil
			g.chans = g.chans[:last]
			break
		}
	}
	ch.grp = nil
	if len(g.chans) == 0 {
		g.endAt = at
		t.flush(g)
	}
}

func (t *Tracker) sibling(ch *channel) *channel {
	if !isLocalHalf(ch.name) {
		return nil
	}
	// The other half's name in a stack buffer: the map lookup does not allocate.
	var buf [96]byte
	if len(ch.name) > len(buf) {
		return t.byName[siblingName(ch.name)]
	}
	b := append(buf[:0], ch.name...)
	b[len(b)-1] ^= '1' ^ '2'
	return t.byName[string(b)]
}

// merge joins two calls (sources without Linkedid only).
func (t *Tracker) merge(a, b *group) {
	if a == nil || b == nil || a == b {
		return
	}
	if len(a.chans) < len(b.chans) {
		a, b = b, a
	}
	for _, ch := range b.chans {
		ch.grp = a
	}
	a.chans = append(a.chans, b.chans...)
	b.chans = nil
	for _, p := range b.outbox {
		p.grp = a
	}
	a.outbox = append(a.outbox, b.outbox...)
	b.outbox = nil
	mergeJournal(a, b)
	if b.start.Before(a.start) || (b.start.Equal(a.start) && olderID(b.origin, a.origin)) {
		a.start, a.origin = b.start, b.origin
	}
	if !a.callIDFromVar && b.callIDFromVar {
		t.setCallID(a, b.callID)
	}
	t.dropGroup(b)
}

// dropGroup forgets a call without ending it (merged away).
func (t *Tracker) dropGroup(g *group) {
	g.retired = true
	if t.groups[g.key] == g {
		delete(t.groups, g.key)
	}
	t.decCallID(g.callID)
}

func (t *Tracker) decCallID(id string) int {
	n := t.callIDs[id] - 1
	if n <= 0 {
		delete(t.callIDs, id)
		return 0
	}
	t.callIDs[id] = n
	return n
}

func (t *Tracker) setCallID(g *group, id string) {
	g.callIDFromVar = true
	if g.callID == id {
		return
	}
	t.decCallID(g.callID)
	g.callID = id
	t.callIDs[id]++
}

// applyVars stores channelvars reported with an event (empty = unset, ignored).
func (t *Tracker) applyVars(ch *channel, vars []Var) {
	for _, v := range vars {
		if v.Value != "" {
			t.setVar(ch, v.Name, v.Value)
		}
	}
}

// interesting reports whether a variable (without "__") is kept.
func (t *Tracker) interesting(name string) bool {
	if hasPrefixFold(name, varPrefixOML) || strings.EqualFold(name, varMixMonitor) {
		return true
	}
	for _, p := range t.prefixes {
		if hasPrefixFold(name, p) {
			return true
		}
	}
	return false
}

func (t *Tracker) setVar(ch *channel, rawName, value string) {
	name, inherited := stripInherit(rawName)
	if name == "" || !t.interesting(name) {
		return
	}
	ascii, lower := asciiCase(name)
	for i := range ch.vars {
		e := &ch.vars[i]
		if !sameKey(e.key, name, ascii) {
			continue
		}
		if value == "" {
			ch.vars = append(ch.vars[:i], ch.vars[i+1:]...)
			return
		}
		if e.value != value {
			e.value = strings.Clone(value)
		}
		e.inherited = inherited
		t.noteVar(ch, e.key, e.value, inherited)
		return
	}
	if value == "" {
		return
	}
	e := newVarEntry(name, value, inherited, ascii, lower)
	if e.key != e.name {
		t.noteSpelling(e.key, e.name)
	}
	if ch.vars == nil {
		ch.vars = make([]varEntry, 0, channelVars)
	}
	ch.vars = append(ch.vars, e)
	t.noteVar(ch, e.key, e.value, inherited)
}

// noteVar reacts to variables that shape the call itself.
func (t *Tracker) noteVar(ch *channel, key, value string, inherited bool) {
	switch key {
	case varAgentID:
		if !inherited {
			ch.ownAgentID = true
		}
	case varCallID, varUniqueID:
		g := ch.grp
		if key == varUniqueID && g.callIDFromVar && g.callID != value && t.varOf(ch, varCallID) != "" {
			return // OMLCALLID wins
		}
		if !g.callIDFromVar || key == varCallID {
			t.setCallID(g, value)
		}
		if ch.linked == "" {
			// Without Linkedid, the call id (the mother's Uniqueid) ties the legs.
			if other := t.chans[value]; other != nil && other.grp != g {
				t.merge(g, other.grp)
			}
		}
	}
}

func (t *Tracker) varOf(ch *channel, key string) string {
	for i := range ch.vars {
		if ch.vars[i].key == key {
			return ch.vars[i].value
		}
	}
	return ""
}

func (t *Tracker) enterBridge(ch *channel, id string, at time.Time) {
	if ch.bridge != nil {
		if ch.bridge.id == id {
			return
		}
		t.leaveBridge(ch)
	}
	b := t.bridges[id]
	if b == nil {
		b = &bridge{id: strings.Clone(id)}
		t.bridges[b.id] = b
	}
	b.members = append(b.members, ch)
	ch.bridge = b
	for _, other := range b.members {
		if other != ch {
			t.tryConnect(ch, other, at)
		}
	}
	t.reexamineSibling(ch, at)
}

func (t *Tracker) leaveBridge(ch *channel) {
	b := ch.bridge
	ch.bridge = nil
	for i, c := range b.members {
		if c == ch {
			last := len(b.members) - 1
			b.members[i] = b.members[last]
			b.members[last] = nil
			b.members = b.members[:last]
			break
		}
	}
	if len(b.members) == 0 {
		delete(t.bridges, b.id)
	}
}

func (t *Tracker) connectIfBridged(a, b *channel, at time.Time) {
	if a.bridge != nil && a.bridge == b.bridge {
		t.tryConnect(a, b, at)
	}
}

// removeChannel forgets a hung-up channel.
func (t *Tracker) removeChannel(ch *channel, at time.Time) {
	if ch.bridge != nil {
		t.leaveBridge(ch)
	}
	delete(t.chans, ch.id)
	if t.lastCh == ch {
		t.lastCh = nil
	}
	if t.tomb != nil {
		t.tomb[ch.id] = struct{}{}
	}
	if ch.name != "" && t.byName[ch.name] == ch {
		delete(t.byName, ch.name)
	}
	if ch.prev != nil {
		ch.prev.next = ch.next
	} else {
		t.oldest = ch.next
	}
	if ch.next != nil {
		ch.next.prev = ch.prev
	} else {
		t.newest = ch.prev
	}
	ch.prev, ch.next = nil, nil
	if ch.grp != nil {
		t.noteFacts(ch.grp, ch)
	}
	t.detach(ch, at)
}

func (t *Tracker) evictOldest(at time.Time) {
	ch := t.oldest
	if ch == nil {
		return
	}
	t.m.evicted.Inc()
	t.log.Warn().Str("channel", ch.name).Str("uniqueid", ch.id).Int("max_channels", t.maxChannels).
		Msg("calls: channel cap reached, dropping the oldest channel (its hangup was probably missed)")
	t.removeChannel(ch, at)
}

// flush emits the ready head of a call's outbox, then the call's Ended once it has no
// channels and nothing waiting. This is the single place that orders a call's facts.
func (t *Tracker) flush(g *group) {
	for len(g.outbox) > 0 && g.outbox[0].ready {
		p := g.outbox[0]
		g.outbox[0] = nil
		g.outbox = g.outbox[1:]
		t.npending--
		if p.drop {
			continue
		}
		t.m.connected.Inc()
		t.noteConnected(g, p)
		t.logConnect(&p.c)
		t.out.Connected(p.c)
	}
	if len(g.outbox) == 0 {
		g.outbox = nil
	}
	if len(g.chans) == 0 && len(g.outbox) == 0 && !g.retired {
		g.retired = true
		if t.groups[g.key] == g {
			delete(t.groups, g.key)
		}
		if t.decCallID(g.callID) == 0 {
			t.m.ended.Inc()
			t.out.Ended(t.ended(g))
		}
	}
}

// isAgentLike: a channel known to be an agent's leg, or the agent's phone: in a call
// that dials the agent (not manual or preview, where the agent's Local ;2 dials the
// customer), what the ;2 half of the agent's Local leg dials is the agent's phone
// (Local/<ext>@oml-agent-…;2 runs Dial(PJSIP/<ext>)). That phone bridged with ;2 is not a
// connect, and once Asterisk optimises the Local pair away it stands in for the agent
// in the customer's bridge.
func (t *Tracker) isAgentLike(ch *channel) bool {
	if t.agentMarked(ch) {
		return true
	}
	if ch.role == roleCustomer || ch.dialCaller == "" {
		return false
	}
	caller := t.chans[ch.dialCaller]
	if caller == nil || !strings.HasSuffix(caller.name, ";2") || !t.agentMarked(caller) {
		return false
	}
	switch t.lookup(caller, ch, varCampType, varCallTypeID) {
	case "1", "4":
		return false
	}
	return true
}

// agentMarked: the channel, or its Local sibling, was named the agent's leg.
func (t *Tracker) agentMarked(ch *channel) bool {
	if ch.role == roleAgent || ch.ownAgentID {
		return true
	}
	if ch.role == roleCustomer {
		return false
	}
	if sib := t.sibling(ch); sib != nil && (sib.role == roleAgent || sib.ownAgentID) {
		return true
	}
	return false
}

// roles decides which of two bridged channels is the agent and which the customer;
// ok is false when they are not an agent–customer pair.
func (t *Tracker) roles(a, b *channel) (agent, cust *channel, ok bool) {
	if localPair(a.name, b.name) {
		return nil, nil, false
	}
	aa, ba := t.isAgentLike(a), t.isAgentLike(b)
	switch {
	case aa && ba:
		return nil, nil, false // agent to agent (consultation, internal call)
	case aa:
		return a, b, true
	case ba:
		return b, a, true
	}
	var caller, peer *channel
	switch {
	case a.dialPeer == b.id || b.dialCaller == a.id:
		caller, peer = a, b
	case b.dialPeer == a.id || a.dialCaller == b.id:
		caller, peer = b, a
	default:
		return nil, nil, false
	}
	// Manual and preview calls are originated on the agent's phone, which then dials
	// the customer; every other call dials the agent.
	switch t.lookup(caller, peer, varCampType, varCallTypeID) {
	case "1", "4":
		return caller, peer, true
	}
	return peer, caller, true
}

// lookup returns the first value of keys found on the given channels, their Local
// siblings, then the call's mother channel (OMLMOTHERCHAN).
func (t *Tracker) lookup(first, second *channel, keys ...string) string {
	var mother string
	for _, ch := range [...]*channel{first, second} {
		if ch == nil {
			continue
		}
		for _, k := range keys {
			if v := t.varOf(ch, k); v != "" {
				return v
			}
		}
		if sib := t.sibling(ch); sib != nil {
			for _, k := range keys {
				if v := t.varOf(sib, k); v != "" {
					return v
				}
			}
		}
		if mother == "" {
			mother = t.varOf(ch, varMotherChan)
		}
	}
	if m := t.byName[mother]; m != nil && m != first && m != second {
		for _, k := range keys {
			if v := t.varOf(m, k); v != "" {
				return v
			}
		}
	}
	return ""
}

// agentIDOf: OMLAGENTID set on the agent leg itself, else the queue MemberName, else an
// inherited OMLAGENTID (click-to-call sets it on the mother, which is the agent's leg).
func (t *Tracker) agentIDOf(agent *channel) int {
	sib := t.sibling(agent)
	for _, ch := range [...]*channel{agent, sib} {
		if ch == nil {
			continue
		}
		for _, e := range ch.vars {
			if e.key == varAgentID && !e.inherited {
				if n, err := strconv.Atoi(e.value); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	if id := agentIDFromMember(agent.memberName); id > 0 {
		return id
	}
	for _, ch := range [...]*channel{agent, sib} {
		if ch == nil {
			continue
		}
		if n, err := strconv.Atoi(t.varOf(ch, varAgentID)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// tryConnect emits a Connected for two channels in one bridge when they are an agent and
// a customer and that (call, agent) was not emitted yet.
func (t *Tracker) tryConnect(a, b *channel, at time.Time) {
	agent, cust, ok := t.roles(a, b)
	if !ok {
		return
	}
	guessed := t.rolesUnsure(a, b) // roles.go: checked by the lazy reads
	if cust = t.behindLocal(cust); cust == nil {
		return // an agent consulting another (roles.go)
	}
	callID := t.lookup(cust, agent, varCallID, varUniqueID)
	callIDKnown := callID != ""
	if !callIDKnown {
		callID = cust.grp.callID
	}
	agentID := t.agentIDOf(agent)
	ext := extensionOf(agent.name)
	if t.emitted.seenOrAdd(callID, agentID, ext, agent.id, at) {
		return
	}
	t.varSets.connects++
	c := Connected{
		CallID:          callID,
		LinkedID:        cust.grp.origin,
		AgentID:         agentID,
		AgentChannel:    agent.name,
		CustomerChannel: cust.name,
		Phone:           t.lookup(cust, agent, varOutNum),
		ContactID:       t.lookup(cust, agent, varCodCli, varContactID),
		At:              at,
	}
	if cust.linked != "" {
		c.LinkedID = cust.linked
	}
	camp := t.lookup(cust, agent, varCampTransfer)
	if camp == "" {
		camp = t.lookup(cust, agent, varCampID)
	}
	c.CampaignID, _ = strconv.Atoi(camp)
	c.CampaignType, _ = strconv.Atoi(t.lookup(cust, agent, varCampType, varCallTypeID))
	c.RecordingFile = recordingFile(t.lookup(cust, agent, varCampRecFile, varRecFile), t.lookup(cust, agent, varMixMonitor))
	// A queue call recovered by a resync has no AgentConnect HoldTime: the lazy reads
	// look for QEHOLDTIME, else name the wait missing (lazy.go).
	waitUnknown := t.resyncing && !agent.hasHold && agent.role == roleAgent
	switch {
	case agent.hasHold:
		c.CallWaitDuration = agent.holdTime
	case waitUnknown:
	case at.After(cust.grp.start):
		c.CallWaitDuration = at.Sub(cust.grp.start)
	}
	customList := t.lookup(cust, agent, varCustomVarList)
	c.Dialplan = t.dialplan(cust, agent, customList)

	job := &lazyJob{
		t:        t,
		cust:     ChannelRef{ID: cust.id, Name: cust.name, LinkedID: cust.linked},
		agent:    ChannelRef{ID: agent.id, Name: agent.name, LinkedID: agent.linked},
		ext:      ext,
		custom:   customList,
		recOff:   notRecorded(t.lookup(cust, agent, varCampRec)),
		callIDOK: callIDKnown,
		dpVars:   *t.dialplanVars.Load(),
		guessed:  guessed,
		at:       at,
		waitRead: waitUnknown,
	}
	p := &pending{c: c, grp: cust.grp}
	t.noteAnswered(cust.grp, p)
	cust.grp.outbox = append(cust.grp.outbox, p)
	t.npending++
	job.p = p
	job.plan()
	if !job.needsWork() {
		job.finish()
		p.ready = true
		t.flush(p.grp)
		return
	}
	if t.stopped || !t.enqueue(job) {
		job.finish()
		p.ready = true
		t.flush(p.grp)
	}
}

// SetDialplanVars replaces Options.DialplanVars (the catalog's dialplan parameter
// sources changed, or could not be read at start-up). Connects made afterwards use the
// new list. It is safe for concurrent use; names is not modified.
func (t *Tracker) SetDialplanVars(names []string) {
	cp := append([]string(nil), names...)
	t.dialplanVars.Store(&cp)
}

// DialplanVars returns the dialplan-data variable names currently read lazily.
func (t *Tracker) DialplanVars() []string {
	return append([]string(nil), *t.dialplanVars.Load()...)
}

func (t *Tracker) enqueue(j *lazyJob) bool {
	select {
	case t.jobs <- j:
		t.m.lazyJobs.Inc()
		return true
	default:
		t.m.lazyDropped.Inc()
		t.log.Warn().Str("call_id", j.p.c.CallID).Msg("calls: lazy variable queue full, emitting the connect with what is known")
		return false
	}
}

// dialplan collects dialplan data: variables starting with a dialplan prefix and those
// named in OMLCUSTOMDIALPLANVARS, from the customer's side first.
func (t *Tracker) dialplan(cust, agent *channel, customList string) map[string]string {
	var custom []string
	if customList != "" {
		custom = splitVarList(customList)
	}
	out := make(map[string]string)
	add := func(ch *channel) {
		if ch == nil {
			return
		}
		for _, e := range ch.vars {
			match := false
			for _, p := range t.prefixes {
				if hasPrefixFold(e.name, p) {
					match = true
					break
				}
			}
			if !match {
				for _, n := range custom {
					if strings.EqualFold(n, e.name) {
						match = true
						break
					}
				}
			}
			if !match {
				continue
			}
			dup := false
			for k := range out {
				if strings.EqualFold(k, e.name) {
					dup = true
					break
				}
			}
			if !dup {
				out[e.name] = e.value
			}
		}
	}
	add(cust)
	add(t.sibling(cust))
	add(agent)
	add(t.sibling(agent))
	return out
}

// Resync lists the live channels (after a reconnect) and reconciles the state with
// them: channels gone meanwhile hang up (their calls end), new ones are added, bridged
// pairs are re-examined, so a connect made while the stream was down is emitted and one
// already emitted is not emitted again. Channels first seen after the listing started
// are left alone (their events raced the listing). It must not be called from the
// client's event or state callback (the listing is an action whose reply that callback
// would block): use Options.Lister and RequestResync, or a goroutine.
func (t *Tracker) Resync(ctx context.Context, list Lister) error {
	mark := t.Mark()
	snapshot, err := list(ctx)
	if err != nil {
		t.mu.Lock()
		t.tomb = nil
		t.mu.Unlock()
		t.m.resyncErrors.Inc()
		return fmt.Errorf("calls: listing live channels to resynchronise: %w", err)
	}
	t.ApplySnapshot(mark, snapshot)
	return nil
}

// RequestResync asks Run to resynchronise with Options.Lister; it never blocks (call it
// from ami/ari OnState when the connection comes up).
func (t *Tracker) RequestResync() {
	select {
	case t.resync <- struct{}{}:
	default:
	}
}

// Mark starts a resynchronisation: it returns the channel-creation mark for
// ApplySnapshot and from now on remembers the channels that hang up, so a listing made
// before their hangup cannot bring them back.
func (t *Tracker) Mark() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tomb = make(map[string]struct{})
	return t.seq
}

// ApplySnapshot is Resync with a listing already made: mark is Mark() taken before the
// listing started.
func (t *Tracker) ApplySnapshot(mark uint64, snapshot []SnapshotChannel) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m.resyncs.Inc()
	t.resyncs++
	at := t.now()
	tomb := t.tomb
	t.tomb = nil
	live := make(map[string]struct{}, len(snapshot))
	kept := snapshot[:0:0]
	for i := range snapshot {
		if _, gone := tomb[snapshot[i].ID]; gone {
			continue // hung up after the listing was made
		}
		live[snapshot[i].ID] = struct{}{}
		kept = append(kept, snapshot[i])
	}
	snapshot = kept
	var gone []*channel
	for id, ch := range t.chans {
		if _, ok := live[id]; !ok && ch.seq <= mark {
			gone = append(gone, ch)
		}
	}
	if len(gone) > 0 {
		t.log.Info().Int("channels", len(gone)).Msg("calls: resync: channels hung up while the event stream was down")
	}
	for _, ch := range gone {
		t.removeChannel(ch, at)
	}
	byBridge := make(map[string][]*channel)
	apps := make(map[*channel]string, len(snapshot))
	for i := range snapshot {
		s := &snapshot[i]
		created := at
		if !s.Created.IsZero() && s.Created.Before(at) {
			created = s.Created // the call's start, so a recovered wait is measured as live
		}
		ch := t.ensure(s.ChannelRef, created)
		if ch == nil {
			continue
		}
		t.applyVars(ch, s.Vars)
		apps[ch] = s.App
		if s.Bridge != "" {
			byBridge[s.Bridge] = append(byBridge[s.Bridge], ch)
		} else if ch.bridge != nil {
			t.leaveBridge(ch)
		}
	}
	t.resyncing = true
	recovered := t.varSets.connects
	defer func() {
		t.resyncing = false
		if n := t.varSets.connects - recovered; n > 0 {
			t.log.Info().Uint64("connects", n).Msg("calls: resync: recovered connects made while the event stream was down")
		}
	}()
	for id, members := range byBridge {
		// The application a channel runs tells caller from callee: Queue dials
		// AppQueue members (agents); Dial dials AppDial channels.
		var caller, callee *channel
		for _, ch := range members {
			switch strings.ToLower(apps[ch]) {
			case "queue":
				caller = ch
				if ch.role == roleUnknown {
					ch.role = roleCustomer
				}
			case "appqueue":
				callee = ch
				ch.role = roleAgent
			case "dial":
				caller = ch
			case "appdial", "appdial2":
				callee = ch
			}
		}
		if caller != nil && callee != nil && caller != callee {
			caller.dialPeer, callee.dialCaller = callee.id, caller.id
			if caller.linked == "" || callee.linked == "" {
				t.merge(caller.grp, callee.grp) // ARI: no Linkedid; the dial ties them, as live
			}
		}
		for _, ch := range members {
			if ch.bridge == nil || ch.bridge.id != id {
				t.enterBridge(ch, id, at)
			}
		}
		// Pairs already bridged before the reconnect: examine them again (a connect
		// missed while the stream was down is emitted; one emitted is not).
		for i, a := range members {
			for _, b := range members[i+1:] {
				t.tryConnect(a, b, at)
			}
		}
	}
}

// olderID compares two Asterisk unique ids "<epoch>.<sequence>": the smaller sequence
// was created first.
func olderID(a, b string) bool {
	_, as, _ := strings.Cut(a, ".")
	_, bs, _ := strings.Cut(b, ".")
	an, err1 := strconv.Atoi(as)
	bn, err2 := strconv.Atoi(bs)
	if err1 != nil || err2 != nil {
		return a < b
	}
	return an < bn
}
