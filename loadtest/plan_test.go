package loadtest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// The generated catalog is a valid file catalog whose every campaign is set up without
// problems and does, on connect, exactly what the plan expects.
func TestGeneratedCatalogMatchesPlan(t *testing.T) {
	plan := NewPlan(50)
	var buf bytes.Buffer
	if err := plan.WriteCatalog(&buf, "http://127.0.0.1:9999"); err != nil {
		t.Fatal(err)
	}
	cat, err := file.Parse("load.yaml", buf.Bytes())
	if err != nil {
		t.Fatalf("the generated catalog does not parse: %v\n%s", err, buf.String())
	}
	ctx := context.Background()
	campaigns, err := cat.Campaigns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(loadCampaignTypes) * len(variantCycle); len(campaigns) != want {
		t.Fatalf("%d campaigns, want %d", len(campaigns), want)
	}
	seen := map[string]bool{}
	for _, c := range campaigns {
		o := plan.Outcome(c.ID)
		fires := c.Interaction.UsesSite() && c.Site != nil && c.Site.Trigger.FiredOnConnect()
		switch {
		case !fires && (o.Pop || o.Server):
			t.Errorf("campaign %d invokes nothing on connect, the plan expects pop=%v server=%v", c.ID, o.Pop, o.Server)
		case fires && o.Pop != (c.Site.Trigger != catalog.TriggerServer):
			t.Errorf("campaign %d: site %d trigger %s, plan pop=%v", c.ID, c.Site.ID, c.Site.Trigger, o.Pop)
		case fires && o.SiteID != c.Site.ID:
			t.Errorf("campaign %d: site %d, plan site %d", c.ID, c.Site.ID, o.SiteID)
		}
		if fires {
			for _, p := range crmnotify.CheckCampaign(c) {
				t.Errorf("campaign %d: %v", c.ID, p)
			}
			seen[c.Type.String()+"/"+c.Site.Trigger.String()] = true
		}
	}
	for _, typ := range loadCampaignTypes {
		for _, trig := range []catalog.Trigger{catalog.TriggerAgent, catalog.TriggerAutomatic, catalog.TriggerServer} {
			if !seen[typ.String()+"/"+trig.String()] {
				t.Errorf("no %s campaign with a %s site", typ, trig)
			}
		}
	}
	for id := 1; id <= 50; id++ {
		if _, err := cat.Agent(ctx, id); err != nil {
			t.Errorf("agent %d: %v", id, err)
		}
	}
	if c, err := cat.Contact(ctx, loadContacts); err != nil || c.Phone != ContactPhone(loadContacts) {
		t.Errorf("contact %d: %+v, %v", loadContacts, c, err)
	}
}

// Every connect of every call the generator builds is found at a BridgeEnter, and each
// one that invokes a CRM has a distinct notification id.
func TestGeneratorFindsEveryConnect(t *testing.T) {
	plan := NewPlan(10)
	gen := newGenerator(plan, 2*time.Second, 1_700_000_000)
	ids := map[string]bool{}
	scenarios := map[callsim.Scenario]int{}
	for range 3 * len(scenarioCycle) {
		c := gen.next()
		scenarios[c.Scenario]++
		lc, err := prepare(plan, c, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for idx, dues := range lc.connects {
			if ev := c.Steps[idx].Event(); ev != "BridgeEnter" {
				t.Errorf("call %s (%s): connect at a %s step", c.CallID, c.Scenario, ev)
			}
			for _, d := range dues {
				n++
				if d.id == "" {
					continue
				}
				if ids[d.id] {
					t.Errorf("call %s: notification id %s twice", c.CallID, d.id)
				}
				ids[d.id] = true
				if d.agent < 1 || d.agent > plan.Agents {
					t.Errorf("call %s: agent %d outside the catalog", c.CallID, d.agent)
				}
			}
		}
		if n != len(c.Expected) {
			t.Errorf("call %s (%s): %d connects found, %d expected", c.CallID, c.Scenario, n, len(c.Expected))
		}
	}
	for _, s := range callsim.Scenarios() {
		if scenarios[s] == 0 {
			t.Errorf("the mix has no %s call", s)
		}
	}
	if lead, settle := mixTiming(2 * time.Second); lead <= 0 || settle <= 0 {
		t.Errorf("mixTiming = %s, %s: want both positive", lead, settle)
	}
}

// recordingSink keeps what the sender wrote.
type recordingSink struct {
	stall time.Duration // how long each write takes

	mu       sync.Mutex
	events   []string
	connects []time.Time // scheduled instants of the connect steps written
}

func (r *recordingSink) send(_ context.Context, batch []batchStep, writing func(*batchStep, time.Time)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range batch {
		b := &batch[i]
		writing(b, time.Now())
		r.events = append(r.events, string(b.step.AppendAMI(nil)))
		if len(b.dues) > 0 {
			r.connects = append(r.connects, b.due)
		}
	}
	time.Sleep(r.stall) // a generator that falls behind
	return len(batch), nil
}

// The sender schedules exactly the asked number of connect slots, writes every step of
// every call, and registers every due notification once.
func TestSenderPlaysEveryCallAndExpectsEveryNotification(t *testing.T) {
	plan := NewPlan(8)
	lead, _ := mixTiming(50 * time.Millisecond)
	sink := &recordingSink{}
	pops, crm := NewLedger(), NewLedger()
	s := &sender{
		gen: newGenerator(plan, 50*time.Millisecond, 1_700_000_000), sink: sink, rate: 2000, slots: 60,
		pops: pops, crm: crm, owners: newPopOwners(), minGap: time.Millisecond, lead: lead,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.run(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	// Calls are started while slots remain; the last may take two slots.
	if st.Connects < 60 || st.Connects > 61 {
		t.Errorf("%d connects written for 60 slots", st.Connects)
	}
	p, c := pops.Totals(), crm.Totals()
	if got := int(p.Expected + c.Expected); got != st.Connects-st.Skipped {
		t.Errorf("%d notifications expected for %d connects invoking a CRM", got, st.Connects-st.Skipped)
	}
	if p.Expected == 0 || c.Expected == 0 || st.Skipped == 0 {
		t.Errorf("pops %d, CRM %d, skipped %d: the mix must produce all three", p.Expected, c.Expected, st.Skipped)
	}
	// Every step of every call went out, Hangups included, in each call's order.
	var want int
	gen := newGenerator(plan, 50*time.Millisecond, 1_700_000_000)
	for range st.Calls {
		want += len(gen.next().Steps)
	}
	if len(sink.events) != want || st.Events != uint64(want) {
		t.Errorf("%d events written (stats %d), the calls have %d steps", len(sink.events), st.Events, want)
	}
	sum := 0
	for _, n := range st.ConnectsAt {
		sum += n
	}
	if sum != st.Connects {
		t.Errorf("connect series sums to %d, %d connects", sum, st.Connects)
	}
}

func TestScrapeFamilySumsLabelledSamples(t *testing.T) {
	reg := prometheus.NewRegistry()
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omlcrm_ami_events_total", Help: "h"}, []string{"event"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "omlcrm_ami_events_total_other", Help: "h"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "omlcrm_ami_events", Help: "h"})
	reg.MustRegister(events, other, hist)
	events.WithLabelValues("Hangup").Add(3)
	events.WithLabelValues(`Var"Set`).Add(4)
	other.Add(100)
	hist.Observe(1)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	m, err := ScrapeFamily(context.Background(), srv.Client(), srv.URL, "omlcrm_ami_events_total")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[`{event="Hangup"}`] != 3 {
		t.Errorf("family = %v", m)
	}
	sum, err := ScrapeSum(context.Background(), srv.Client(), srv.URL, "omlcrm_ami_events_total")
	if err != nil || sum != 7 {
		t.Errorf("sum = %v, %v; want 7", sum, err)
	}
	if sum, err := ScrapeSum(context.Background(), srv.Client(), srv.URL, "omlcrm_nothing_total"); err != nil || sum != 0 {
		t.Errorf("absent family: %v, %v; want 0, nil", sum, err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	if _, err := ScrapeSum(context.Background(), bad.Client(), bad.URL, "x"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("HTTP 503: err = %v", err)
	}
}

// ReadCPU sees this process's CPU time grow while it works, and reads another process.
func TestReadCPU(t *testing.T) {
	before, err := ReadCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if now, err := ReadCPU(0); err != nil {
			t.Fatal(err)
		} else if now-before >= 50*time.Millisecond {
			break
		}
	}
	if now, _ := ReadCPU(0); now-before < 50*time.Millisecond {
		t.Errorf("CPU time grew by %s after 10 s of work (x=%d)", now-before, x)
	}
	if _, err := ReadCPU(1); err != nil {
		t.Errorf("reading pid 1: %v", err)
	}
	user, system, err := ReadCPUTimes(0)
	if total, _ := ReadCPU(0); err != nil || user <= 0 || system < 0 || user+system > total+clockTick {
		t.Errorf("ReadCPUTimes = %v user, %v system, %v; ReadCPU %v", user, system, err, total)
	}
	// Sleeping parks this process's threads: each wake-up is a context switch.
	switches, err := ReadContextSwitches(0)
	if err != nil || switches == 0 {
		t.Fatalf("ReadContextSwitches = %d, %v", switches, err)
	}
	for range 20 {
		time.Sleep(time.Millisecond)
	}
	if after, err := ReadContextSwitches(0); err != nil || after < switches+10 {
		t.Errorf("context switches %d → %d (%v) across 20 sleeps", switches, after, err)
	}
	if _, err := ReadContextSwitches(1 << 30); err == nil {
		t.Error("context switches of a process that does not exist: no error")
	}
	if _, err := ReadCPU(1 << 30); err == nil {
		t.Error("reading a process that does not exist: no error")
	}
	if l, err := LoadAverage(); err != nil || l < 0 {
		t.Errorf("LoadAverage = %v, %v", l, err)
	}
}

func TestWorstArrivalsKeepsTheSlowest(t *testing.T) {
	w := newWorstArrivals(3)
	at := time.Now()
	for i, ms := range []int{5, 1, 9, 3, 7, 2} {
		w.note("pop", at.Add(time.Duration(i)*time.Second), time.Duration(ms)*time.Millisecond)
	}
	got := w.list()
	if len(got) != 3 || got[0].Latency != 9*time.Millisecond || got[1].Latency != 7*time.Millisecond || got[2].Latency != 5*time.Millisecond {
		t.Fatalf("slowest = %+v, want 9, 7, 5 ms", got)
	}
	if !got[0].At.Equal(at.Add(2 * time.Second)) {
		t.Errorf("the 9 ms arrival is at %v, want its own time", got[0].At)
	}
}

func TestTCPCounters(t *testing.T) {
	before, err := ReadTCPCounters()
	if err != nil {
		t.Fatal(err)
	}
	after := before
	after.RetransSegs += 3
	after.Timeouts++
	if d := after.Sub(before); d != (TCPCounters{RetransSegs: 3, Timeouts: 1}) {
		t.Errorf("Sub = %+v", d)
	}
}

// A generator that falls behind must not hide it: every expected notification counts its
// latency from the connect's scheduled instant, not from when its bytes were written, and
// the lateness shows as generator lag (coordinated omission otherwise).
func TestSenderMeasuresFromTheScheduledInstant(t *testing.T) {
	plan := NewPlan(8)
	lead, _ := mixTiming(50 * time.Millisecond)
	sink := &recordingSink{stall: 15 * time.Millisecond}
	pops, crm := NewLedger(), NewLedger()
	lag := NewRecorder()
	s := &sender{
		gen: newGenerator(plan, 50*time.Millisecond, 1_700_000_000), sink: sink, rate: 1000, slots: 40,
		pops: pops, crm: crm, owners: newPopOwners(), minGap: time.Millisecond, lead: lead, lag: lag,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.run(ctx); err != nil {
		t.Fatal(err)
	}
	scheduled := map[time.Time]bool{}
	for _, at := range sink.connects {
		scheduled[at] = true
	}
	n := 0
	for _, l := range []*Ledger{pops, crm} {
		l.mu.Lock()
		for id, e := range l.expected {
			n++
			if !scheduled[e.at] {
				t.Errorf("%s expected from %s, which is no connect's scheduled instant", id, e.at.Format(time.StampMicro))
			}
		}
		l.mu.Unlock()
	}
	if n == 0 {
		t.Fatal("no notification expected")
	}
	// Writes take 15ms at a 1ms connect interval: the generator falls behind.
	st := s.Stats()
	if lag.Count() != uint64(st.Connects) || lag.Summary().Max < sink.stall || st.MaxLag < lag.Summary().Max {
		t.Errorf("lag recorded %d times for %d connects, max %v (all events %v): want >= the %v stall",
			lag.Count(), st.Connects, lag.Summary().Max, st.MaxLag, sink.stall)
	}
}

// holdGC keeps this process's collector from running while its heap grows within the
// budget, and its release restores Go's settings (once, however often called).
func TestHoldGC(t *testing.T) {
	pct := debug.SetGCPercent(100)
	debug.SetGCPercent(pct)
	limit := debug.SetMemoryLimit(-1)
	release := holdGC(512 << 20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var keep [][]byte
	for range 64 { // 64 MiB, half of it kept
		b := make([]byte, 1<<20)
		if len(keep) < 32 {
			keep = append(keep, b)
		}
	}
	runtime.ReadMemStats(&after)
	if after.NumGC != before.NumGC {
		t.Errorf("%d collections while held within the budget", after.NumGC-before.NumGC)
	}
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GC percent while held = %d, want -1 (off below the limit)", got)
	}
	release()
	release()
	if got := debug.SetGCPercent(pct); got != pct {
		t.Errorf("GC percent after release = %d, want %d", got, pct)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("memory limit after release = %d, want %d", got, limit)
	}
	runtime.KeepAlive(keep)
	// A negative budget leaves the collector alone.
	holdGC(-1)()
	if got := debug.SetGCPercent(pct); got != pct {
		t.Errorf("GC percent after holdGC(-1) = %d, want %d", got, pct)
	}
}
