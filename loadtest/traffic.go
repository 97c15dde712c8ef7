package loadtest

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// scenarioCycle is the call mix, repeated: mostly plain inbound and dialer queue calls and
// click-to-call (preview, manual), with holds, both kinds of transfer (two connects) and
// abandons (no connect), roughly as a contact center's day looks.
var scenarioCycle = []callsim.Scenario{
	callsim.InboundQueue, callsim.DialerQueue, callsim.Preview, callsim.InboundQueue, callsim.Manual,
	callsim.HoldUnhold, callsim.DialerQueue, callsim.InboundQueue, callsim.BlindTransfer, callsim.Preview,
	callsim.InboundQueue, callsim.Abandon, callsim.DialerQueue, callsim.AttendedTransfer, callsim.Manual,
	callsim.InboundQueue, callsim.HoldUnhold, callsim.DialerQueue, callsim.Preview, callsim.InboundQueue,
}

// campaignTypeOf is the campaign type a scenario's calls belong to.
func campaignTypeOf(s callsim.Scenario) catalog.CampaignType {
	switch s {
	case callsim.DialerQueue:
		return catalog.TypeDialer
	case callsim.Preview:
		return catalog.TypePreview
	case callsim.Manual:
		return catalog.TypeManual
	}
	return catalog.TypeInbound
}

// mixTiming returns, for the call mix with talk time talk, the longest time from a
// call's start to its first connect (lead) and from its first to its last connect
// (settle: how long until transfers' second connects reach their steady rate).
func mixTiming(talk time.Duration) (lead, settle time.Duration) {
	ids := callsim.NewIDs(1)
	for _, s := range scenarioCycle {
		c := callsim.Build(ids, callsim.Params{Scenario: s, Talk: talk})
		var first, last time.Duration = -1, 0
		for _, e := range c.Expected {
			if i := connectStep(c, e.AgentChannel, e.CustomerChannel); i >= 0 {
				at := c.Steps[i].At
				if first < 0 || at < first {
					first = at
				}
				last = max(last, at)
			}
		}
		if first >= 0 {
			lead, settle = max(lead, first), max(settle, last-first)
		}
	}
	return lead, settle
}

// generator builds the calls of a run, one after the other, and decides what each
// connect must produce. It is used by the sending goroutine only.
type generator struct {
	plan    *Plan
	ids     *callsim.IDs
	talk    time.Duration
	n       int
	perType map[catalog.CampaignType]int
}

func newGenerator(plan *Plan, talk time.Duration, epoch int64) *generator {
	return &generator{plan: plan, ids: callsim.NewIDs(epoch), talk: talk, perType: map[catalog.CampaignType]int{}}
}

// next builds call number g.n: scenario from the cycle, the type's next campaign, agents
// round robin, a known contact for nine calls in ten, and the dialplan namings and agent
// channel technologies OMniLeads uses.
func (g *generator) next() *callsim.Call {
	i := g.n
	g.n++
	s := scenarioCycle[i%len(scenarioCycle)]
	t := campaignTypeOf(s)
	k := g.perType[t]
	g.perType[t]++
	agents := g.plan.Agents
	agent := i%agents + 1
	second := (agent-1+max(agents/2, 1))%agents + 1
	p := callsim.Params{
		Scenario:     s,
		CampaignID:   g.plan.Campaign(t, k),
		CampaignType: int(t),
		Agent:        callsim.Agent{ID: agent},
		SecondAgent:  callsim.Agent{ID: second},
		TransferCamp: g.plan.Campaign(catalog.TypeInbound, k+1),
		Naming:       []callsim.Naming{callsim.NamingBoth, callsim.NamingOML2, callsim.NamingCallID}[i%3],
		AgentPJSIP:   i%4 == 3,
		Talk:         g.talk,
	}
	if i%10 == 9 {
		p.ContactID = "-1" // unknown caller
	} else {
		c := i%loadContacts + 1
		p.ContactID, p.Phone = strconv.Itoa(c), ContactPhone(c)
	}
	return callsim.Build(g.ids, p)
}

// due is one connect and the notification it must produce (none when id is "").
type due struct {
	id     string // "": the campaign invokes nothing on connect
	agent  int
	server bool // a CRM request; else a crm.pop
}

// liveCall is a call being played: its steps, the next one to send, and the steps at
// which its connects happen.
type liveCall struct {
	call  *callsim.Call
	start time.Time
	next  int
	// connects maps a step index to the connects it makes, with what becomes due.
	connects map[int][]due
}

// nextAt is when the next step is due.
func (c *liveCall) nextAt() time.Time { return c.start.Add(c.call.Steps[c.next].At) }

// prepare finds, for each expected Connected of the call, the step that connects it (the
// BridgeEnter that puts the agent's and the customer's channels in one bridge, which is
// what the tracker reacts to), and what the connect must produce according to the plan.
func prepare(plan *Plan, c *callsim.Call, start time.Time) (*liveCall, error) {
	lc := &liveCall{call: c, start: start, connects: map[int][]due{}}
	for _, e := range c.Expected {
		idx := connectStep(c, e.AgentChannel, e.CustomerChannel)
		if idx < 0 {
			return nil, fmt.Errorf("loadtest: call %s (%s): no step bridges agent %s with customer %s",
				c.CallID, c.Scenario, e.AgentChannel, e.CustomerChannel)
		}
		o := plan.Outcome(e.CampaignID)
		d := due{agent: e.AgentID, server: o.Server}
		if o.Pop || o.Server {
			d.id = crmnotify.NotificationID(e.CallID, e.AgentID, o.SiteID)
		}
		lc.connects[idx] = append(lc.connects[idx], d)
	}
	return lc, nil
}

// connectStep returns the index of the first BridgeEnter after which channels a and b
// are in the same bridge, or -1.
func connectStep(c *callsim.Call, a, b string) int {
	in := map[string]string{} // channel → bridge
	var buf []byte
	for i := range c.Steps {
		st := &c.Steps[i]
		ev := st.Event()
		if ev != "BridgeEnter" && ev != "BridgeLeave" {
			continue
		}
		buf = st.AppendAMI(buf[:0])
		ch, br := amiHeader(buf, "Channel"), amiHeader(buf, "BridgeUniqueid")
		if ev == "BridgeLeave" {
			delete(in, ch)
			continue
		}
		in[ch] = br
		if (ch == a && in[b] == br) || (ch == b && in[a] == br) {
			return i
		}
	}
	return -1
}

// amiHeader returns the value of the first header key in an AMI message.
func amiHeader(msg []byte, key string) string {
	for len(msg) > 0 {
		line := msg
		if i := bytes.Index(msg, []byte("\r\n")); i >= 0 {
			line, msg = msg[:i], msg[i+2:]
		} else {
			msg = nil
		}
		if k, v, ok := bytes.Cut(line, []byte(": ")); ok && string(k) == key {
			return string(v)
		}
	}
	return ""
}

// callHeap orders live calls by their next step's time.
type callHeap []*liveCall

func (h callHeap) Len() int           { return len(h) }
func (h callHeap) Less(i, j int) bool { return h[i].nextAt().Before(h[j].nextAt()) }
func (h callHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *callHeap) Push(x any)        { *h = append(*h, x.(*liveCall)) }
func (h *callHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// eventSink is the fake Asterisk side: it writes a batch of steps to the daemon and
// reports how many events went out. It blocks while the daemon does not read. It calls
// writing with every step and the time just before that step's bytes are written, which
// tells how late the generator is against the step's schedule.
type eventSink interface {
	send(ctx context.Context, batch []batchStep, writing func(b *batchStep, at time.Time)) (int, error)
}

// batchStep is one step to write.
type batchStep struct {
	step  *callsim.Step
	start time.Time // the call's start (ARI timestamps)
	due   time.Time // when the step is scheduled: latencies of its connects count from here
	dues  []due     // the connects this step makes
}

// bucketWidth is the resolution of the sender's connect and event time series.
const bucketWidth = 100 * time.Millisecond

// trafficStats are the sender's counts.
type trafficStats struct {
	Calls      int
	Connects   int // connects written (agent and customer bridged)
	Skipped    int // of which invoke nothing (no site, form only, other triggers)
	Events     uint64
	Bursts     int // sends with at least one event: the instants the daemon was offered events
	SendErrors int
	LastError  string
	MaxLag     time.Duration // longest a step was written after its scheduled time (generator lag)
	MaxSend    time.Duration // longest one write took (the daemon not reading shows here)
	Start, End time.Time
	// T0 is when the first connect was scheduled; ConnectsAt and EventsAt count what was
	// written in each bucketWidth since T0.
	T0         time.Time
	ConnectsAt []int
	EventsAt   []int
}

// count adds n to the bucket of t in series.
func count(series []int, t0, t time.Time, n int) []int {
	i := int(t.Sub(t0) / bucketWidth)
	if i < 0 {
		i = 0
	}
	for len(series) <= i {
		series = append(series, 0)
	}
	series[i] += n
	return series
}

// steadyRate is the rate per second of series over [from, to) since T0.
func steadyRate(series []int, from, to time.Duration) (float64, int) {
	lo, hi := int(from/bucketWidth), int(to/bucketWidth)
	if hi <= lo {
		return 0, 0
	}
	n := 0
	for i := lo; i < hi && i < len(series); i++ {
		n += series[i]
	}
	return float64(n) / (to - from).Seconds(), n
}

// sender plays the calls so that connects are written at a steady rate, and registers
// every due notification in the ledgers just before the step that causes it is written.
//
// Connects, not calls, are paced: connect slot k is due at T0 + k/rate. A call takes as
// many consecutive slots as it has connects and starts so that its first connect falls
// on its first slot (a transfer's second connect follows seconds later, as its scenario
// says); a call without a connect (an abandon) starts without taking a slot.
type sender struct {
	gen    *generator
	sink   eventSink
	rate   float64 // connects per second
	slots  int     // connects to schedule
	calls  int     // cap on calls (0: none)
	pops   *Ledger
	crm    *Ledger
	owners *popOwners
	minGap time.Duration // batching window: events due within it go in one write
	// lead is the longest time from a call's start to its first connect.
	lead time.Duration
	// lag records, for every connect, how long after its scheduled instant its bytes
	// started to be written (nil: not recorded).
	lag *Recorder

	mu    sync.Mutex
	stats trafficStats
}

// Stats returns the sender's counts so far.
func (s *sender) Stats() trafficStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ConnectsAt = append([]int(nil), st.ConnectsAt...)
	st.EventsAt = append([]int(nil), st.EventsAt...)
	return st
}

// run plays every call and returns when the last step is written or ctx ends.
func (s *sender) run(ctx context.Context) error {
	interval := time.Duration(float64(time.Second) / s.rate)
	start := time.Now()
	t0 := start.Add(s.lead + 10*time.Millisecond)
	s.mu.Lock()
	s.stats.Start, s.stats.T0 = start, t0
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stats.End = time.Now()
		s.mu.Unlock()
	}()
	var live callHeap
	slot, built := 0, 0
	more := func() bool { return slot < s.slots && (s.calls == 0 || built < s.calls) }
	slotAt := func() time.Time { return t0.Add(time.Duration(slot) * interval) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var batch []batchStep
	for {
		now := time.Now()
		// Start the calls whose first connect is due within lead (and a few ms), so that
		// building them is not on the writing path.
		for more() && !slotAt().Add(-s.lead).After(now.Add(5*time.Millisecond)) {
			c := s.gen.next()
			at := slotAt()
			lc, err := prepare(s.gen.plan, c, at)
			if err != nil {
				return err
			}
			first := -1
			for idx := range lc.connects {
				if first < 0 || idx < first {
					first = idx
				}
			}
			if first >= 0 {
				lc.start = at.Add(-c.Steps[first].At)
				slot += len(c.Expected)
			} else {
				lc.start = at.Add(-s.lead)
			}
			built++
			s.mu.Lock()
			s.stats.Calls++
			s.mu.Unlock()
			if len(c.Steps) > 0 {
				heap.Push(&live, lc)
			}
		}
		// Collect every step due now.
		batch = batch[:0]
		for live.Len() > 0 && !live[0].nextAt().After(now) {
			lc := live[0]
			batch = append(batch, batchStep{step: &lc.call.Steps[lc.next], start: lc.start, due: lc.nextAt(), dues: lc.connects[lc.next]})
			lc.next++
			if lc.next == len(lc.call.Steps) {
				heap.Pop(&live)
			} else {
				heap.Fix(&live, 0)
			}
		}
		if len(batch) > 0 {
			begin := time.Now()
			n, err := s.sink.send(ctx, batch, s.writing)
			s.mu.Lock()
			s.stats.MaxSend = max(s.stats.MaxSend, time.Since(begin))
			s.stats.Events += uint64(n)
			if n > 0 {
				s.stats.Bursts++
			}
			s.stats.EventsAt = count(s.stats.EventsAt, s.stats.T0, begin, n)
			if err != nil {
				s.stats.SendErrors++
				s.stats.LastError = err.Error()
			}
			s.mu.Unlock()
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if !more() && live.Len() == 0 {
			return nil
		}
		// Sleep until the next step or call start, but at least the batching window.
		var wake time.Time
		if more() {
			wake = slotAt().Add(-s.lead)
		}
		if live.Len() > 0 && (wake.IsZero() || live[0].nextAt().Before(wake)) {
			wake = live[0].nextAt()
		}
		if next := time.Now().Add(s.minGap); wake.Before(next) {
			wake = next
		}
		if err := waitUntil(ctx, timer, wake); err != nil {
			return err
		}
	}
}

// writing is called just before a step's bytes are written (at): it notes the
// generator's lag, and registers the notifications a connect step makes due from the
// step's SCHEDULED instant, not from at: a generator running late must show in the
// latencies (no coordinated omission), and separately as lag.
func (s *sender) writing(b *batchStep, at time.Time) {
	lag := at.Sub(b.due)
	if len(b.dues) == 0 {
		s.mu.Lock()
		s.stats.MaxLag = max(s.stats.MaxLag, lag)
		s.mu.Unlock()
		return
	}
	if s.lag != nil {
		s.lag.Record(lag)
	}
	skipped := 0
	for _, d := range b.dues {
		switch {
		case d.id == "":
			skipped++
		case d.server:
			s.crm.Expect(d.id, b.due)
		default:
			s.owners.set(d.id, d.agent)
			s.pops.Expect(d.id, b.due)
		}
	}
	s.mu.Lock()
	s.stats.MaxLag = max(s.stats.MaxLag, lag)
	s.stats.Connects += len(b.dues)
	s.stats.Skipped += skipped
	s.stats.ConnectsAt = count(s.stats.ConnectsAt, s.stats.T0, b.due, len(b.dues))
	s.mu.Unlock()
}

// popOwners remembers which agent each expected pop is for, to catch pops delivered to
// the wrong agent.
type popOwners struct {
	mu sync.Mutex
	m  map[string]int
}

func newPopOwners() *popOwners { return &popOwners{m: map[string]int{}} }

func (o *popOwners) set(id string, agent int) {
	o.mu.Lock()
	o.m[id] = agent
	o.mu.Unlock()
}

// owner returns the agent a pop is for (0: not expected).
func (o *popOwners) owner(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[id]
}
