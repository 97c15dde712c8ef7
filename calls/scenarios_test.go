package calls_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
)

// checkSim compares the facts with what callsim says the calls must produce.
func checkSim(t *testing.T, rec *recorder, cs ...*callsim.Call) {
	t.Helper()
	got, ended := rec.facts(t)
	byKey := map[string]calls.Connected{}
	for _, c := range got {
		k := fmt.Sprint(c.CallID, "/", c.AgentID)
		if _, dup := byKey[k]; dup {
			t.Errorf("two Connected for call %s agent %d", c.CallID, c.AgentID)
		}
		byKey[k] = c
	}
	n := 0
	for _, c := range cs {
		for _, e := range c.Expected {
			n++
			g, ok := byKey[fmt.Sprint(e.CallID, "/", e.AgentID)]
			if !ok {
				t.Errorf("%s: no Connected for call %s agent %d", c.Scenario, e.CallID, e.AgentID)
				continue
			}
			checkConnected(t, g, wantFromSim(e))
		}
	}
	if len(got) != n {
		t.Errorf("%d Connected, want %d", len(got), n)
	}
	if len(ended) != len(cs) {
		t.Errorf("%d Ended, want %d", len(ended), len(cs))
	}
}

// TestBothSources runs every scenario (inbound, dialer, preview, manual, abandon, blind
// and attended transfer, hold/unhold re-bridge, Local channel optimisation) through the
// AMI client and through the ARI client, against the fake servers.
func TestBothSources(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			for _, sc := range callsim.AllScenarios() {
				t.Run(sc.String(), func(t *testing.T) {
					tr, rec := startTracker(t, calls.Options{})
					f := src.start(t, tr, sourceOpts{})
					ids := callsim.NewIDs(simBase.Unix())
					c := callsim.Build(ids, callsim.Params{Scenario: sc, Agent: callsim.Agent{ID: 7}, SecondAgent: callsim.Agent{ID: 12},
						ContactID: "321321321"})
					f.send(t, callsim.Interleave([]*callsim.Call{c}, 0))
					waitFor(t, "the call's Ended", func() bool { _, e := rec.counts(); return e == 1 })
					checkSim(t, rec, c)
					if s := tr.Stats(); s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 {
						t.Errorf("state left: %+v", s)
					}
				})
			}
		})
	}
}

// TestInterleaved200Calls: 200 concurrent calls of every kind (inbound, dialer,
// preview, manual, abandon, transfers, hold) interleaved in one stream.
func TestInterleaved200Calls(t *testing.T) {
	rnd := rand.New(rand.NewPCG(4, 2))
	ids := callsim.NewIDs(simBase.Unix())
	var cs []*callsim.Call
	for i := range 200 {
		sc := callsim.AllScenarios()[rnd.IntN(len(callsim.AllScenarios()))]
		cs = append(cs, callsim.Build(ids, callsim.Params{
			Scenario:    sc,
			Agent:       callsim.Agent{ID: 1 + i},
			SecondAgent: callsim.Agent{ID: 300 + i},
			ContactID:   fmt.Sprint(5000 + i),
			Quiet:       i%2 == 0,
		}))
	}
	steps := callsim.Interleave(cs, 20*time.Millisecond)
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			tr, rec := startTracker(t, calls.Options{})
			f := src.start(t, tr, sourceOpts{})
			f.send(t, steps)
			waitFor(t, "200 Ended", func() bool { _, e := rec.counts(); return e == 200 })
			checkSim(t, rec, cs...)
			if s := tr.Stats(); s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 {
				t.Errorf("state left: %+v", s)
			}
		})
	}
}

// TestLocalOptimization: the queue member is a Local channel whose ;2 dials the agent's
// phone; after the connect Asterisk optimises the Local pair away (the phone is swapped
// into the customer's bridge, both halves hang up). Over both sources the call gives
// exactly one Connected (agent 7 on the Local ;1, made at the queue connect, not when ;2
// was bridged with the phone), no Ended while the customer and the phone talk on, and
// one Ended when the last channel goes.
func TestLocalOptimization(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			tr, rec := startTracker(t, calls.Options{})
			f := src.start(t, tr, sourceOpts{})
			ids := callsim.NewIDs(simBase.Unix())
			c := callsim.Build(ids, callsim.Params{Scenario: callsim.LocalOptimization, Agent: callsim.Agent{ID: 7, Extension: "1003"},
				ContactID: "321321321"})
			steps := callsim.Interleave([]*callsim.Call{c}, 0)
			// optimized: just after the two Local halves' hangups that follow
			// LocalOptimizationEnd; last: the final hangup.
			optimized, last, end, hangups := -1, -1, -1, 0
			for i, s := range steps {
				switch s.Step.Event() {
				case "LocalOptimizationEnd":
					end = i
				case "Hangup":
					last = i
					if end >= 0 {
						if hangups++; hangups == 2 {
							optimized = i + 1
						}
					}
				}
			}
			if optimized <= 0 || last <= optimized {
				t.Fatalf("callsim %s: no LocalOptimizationEnd followed by the halves' hangups", c.Scenario)
			}

			f.send(t, steps[:optimized])
			// The customer's Local pair and the phone remain; the connect was remembered.
			waitFor(t, "the Local halves' hangups", func() bool { s := tr.Stats(); return s.Channels == 3 && s.Emitted > 0 })
			if n, e := rec.counts(); n != 1 || e != 0 {
				t.Fatalf("after the optimisation: %d Connected, %d Ended; want 1 and 0", n, e)
			}
			f.send(t, steps[optimized:last])
			waitFor(t, "all but the last channel's hangup", func() bool { return tr.Stats().Channels == 1 })
			if n, e := rec.counts(); n != 1 || e != 0 {
				t.Fatalf("before the last hangup: %d Connected, %d Ended; want 1 and 0", n, e)
			}
			f.send(t, steps[last:])
			waitFor(t, "the call's Ended", func() bool { _, e := rec.counts(); return e == 1 })
			checkSim(t, rec, c)
			got, ended := rec.facts(t)
			if len(got) == 1 && (got[0].AgentID != 7 || !strings.HasPrefix(got[0].AgentChannel, "Local/1003@oml-agent-")) {
				t.Errorf("Connected agent %d on %s, want agent 7 on the Local ;1", got[0].AgentID, got[0].AgentChannel)
			}
			if len(ended) == 1 && ended[0].CallID != c.CallID {
				t.Errorf("Ended for call %s, want %s", ended[0].CallID, c.CallID)
			}
			if s := tr.Stats(); s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 {
				t.Errorf("state left: %+v", s)
			}
		})
	}
}

// TestOmlcrmVariables: several dialplan-data variables in mixed case, one named only
// in OMLCUSTOMDIALPLANVARS, the recording taken from MIXMONITOR_FILENAME when the
// recording-name variables are absent, both namings of the OMniLeads variables.
func TestOmlcrmVariables(t *testing.T) {
	for _, naming := range []callsim.Naming{callsim.NamingOML2, callsim.NamingCallID} {
		for _, src := range sources {
			t.Run(fmt.Sprint(src.name, "/naming", naming), func(t *testing.T) {
				tr, rec := startTracker(t, calls.Options{DialplanPrefixes: []string{"Omlcrm", "crm_"}})
				f := src.start(t, tr, sourceOpts{})
				ids := callsim.NewIDs(simBase.Unix())
				dp := []callsim.Var{
					{Name: "Omlcrmticket", Value: "T-99"},
					{Name: "OMLCRMCUSTOMER", Value: "C-1"},
					{Name: "omlcrm_Origen", Value: "web ñ & más"},
					{Name: "Crm_Zone", Value: "norte"},
				}
				c := callsim.Build(ids, callsim.Params{Scenario: callsim.DialerQueue, Naming: naming, Agent: callsim.Agent{ID: 5},
					ContactID: "42", Dialplan: dp, Omit: []string{"OMLRECFILENAME", "OMLCAMPRECFILENAME"}})
				f.send(t, callsim.Interleave([]*callsim.Call{c}, 0))
				waitFor(t, "Ended", func() bool { _, e := rec.counts(); return e == 1 })
				got, _ := rec.facts(t)
				if len(got) != 1 {
					t.Fatalf("%d Connected, want 1", len(got))
				}
				g := got[0]
				checkConnected(t, g, wantFromSim(c.Expected[0]))
				for name, v := range map[string]string{"OMLCRMTICKET": "T-99", "omlcrmticket": "T-99", "OmlcrmCustomer": "C-1",
					"OMLCRM_ORIGEN": "web ñ & más", "crm_zone": "norte"} {
					if got, ok := g.DialplanValue(name); !ok || got != v {
						t.Errorf("DialplanValue(%q) = %q, %v; want %q", name, got, ok, v)
					}
				}
				if _, ok := g.DialplanValue("OMLCAMPID"); ok {
					t.Errorf("OMLCAMPID is not dialplan data: %v", g.Dialplan)
				}
				if !strings.HasPrefix(g.RecordingFile, "dialer-9-") || !strings.HasSuffix(g.RecordingFile, c.CallID+".wav") {
					t.Errorf("recording %q", g.RecordingFile)
				}
			})
		}
	}
}

// TestLazyVariables: the dialplan did not announce the campaign, type, phone, contact
// and agent variables, and a custom variable named in OMLCUSTOMDIALPLANVARS has no
// Omlcrm prefix; the tracker reads them with Getvar / the ARI variable endpoint. With
// NoAgentID and a PJSIP agent, the agent id comes from the extension resolver.
func TestLazyVariables(t *testing.T) {
	for _, src := range sources {
		for _, pjsip := range []bool{false, true} {
			t.Run(fmt.Sprint(src.name, "/pjsip=", pjsip), func(t *testing.T) {
				var f *feed
				opts := calls.Options{Resolver: extResolver{}, LazyVarTimeout: 5 * time.Second}
				rec := &recorder{}
				opts.Output = rec
				opts.VarReader = lazyReader{&f}
				tr, _ := startTracker(t, opts)
				f = src.start(t, tr, sourceOpts{})
				ids := callsim.NewIDs(simBase.Unix())
				omit := []string{"OMLCAMPID", "OMLCAMPTYPE", "OMLCALLTYPEID", "OMLOUTNUM", "OMLCODCLI", "OMLCONTACTID", "OMLAGENTID"}
				c := callsim.Build(ids, callsim.Params{Scenario: callsim.InboundQueue, Agent: callsim.Agent{ID: 17}, ContactID: "77",
					AgentPJSIP: pjsip, NoAgentID: pjsip, Omit: omit,
					Dialplan: []callsim.Var{{Name: "Omlcrmticket", Value: "T-5"}, {Name: "IDCRM", Value: "abc-9"}}})
				f.setVars(c)
				f.send(t, callsim.Interleave([]*callsim.Call{c}, 0))
				waitFor(t, "Ended", func() bool { _, e := rec.counts(); return e == 1 })
				got, _ := rec.facts(t)
				if len(got) != 1 {
					t.Fatalf("%d Connected, want 1", len(got))
				}
				checkConnected(t, got[0], wantFromSim(c.Expected[0]))
			})
		}
	}
}

// lazyReader forwards to the feed's reader once the source is started.
type lazyReader struct{ f **feed }

func (l lazyReader) Getvar(ctx context.Context, ch calls.ChannelRef, name string) (string, error) {
	return (*l.f).reader.Getvar(ctx, ch, name)
}

// TestLazyVariablesMissing: when nothing answers, the Connected still comes, on time,
// saying which fields are missing.
func TestLazyVariablesMissing(t *testing.T) {
	rec := &recorder{}
	tr, _ := startTracker(t, calls.Options{Output: rec, VarReader: failingReader{}, LazyVarTimeout: 50 * time.Millisecond})
	ids := callsim.NewIDs(simBase.Unix())
	c := callsim.Build(ids, callsim.Params{Scenario: callsim.InboundQueue, Agent: callsim.Agent{ID: 3}, Quiet: true,
		Omit: []string{"OMLCAMPID", "OMLOUTNUM"}})
	feedDirect(t, tr, c)
	settle(t, tr)
	got, ended := rec.facts(t)
	if len(got) != 1 || len(ended) != 1 {
		t.Fatalf("%d Connected, %d Ended; want 1 and 1", len(got), len(ended))
	}
	if fmt.Sprint(got[0].Missing) != "[CampaignID Phone]" {
		t.Errorf("Missing = %v, want [CampaignID Phone]", got[0].Missing)
	}
}

type failingReader struct{}

func (failingReader) Getvar(context.Context, calls.ChannelRef, string) (string, error) {
	return "", errors.New("no such channel")
}

// countingReader answers IDCRM (a dialplan variable without the Omlcrm prefix) and
// counts what it was asked.
type countingReader struct {
	mu    sync.Mutex
	asked map[string]int
}

func (r *countingReader) Getvar(_ context.Context, _ calls.ChannelRef, name string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked[name]++
	if name == "IDCRM" {
		return "abc-9", nil
	}
	return "", nil
}

func (r *countingReader) times(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[name]
}

// TestSetDialplanVars: the list of dialplan variables read lazily can change while the
// tracker runs (the catalog answered after start-up); connects afterwards use it.
func TestSetDialplanVars(t *testing.T) {
	reader := &countingReader{asked: map[string]int{}}
	tr, rec := startTracker(t, calls.Options{VarReader: reader, LazyVarTimeout: 5 * time.Second})
	if got := tr.DialplanVars(); len(got) != 0 {
		t.Fatalf("DialplanVars() = %v, want none", got)
	}
	call := func(i int) {
		for phase := range 3 {
			syntheticCall(tr, i, phase)
		}
		waitFor(t, "the call's Ended", func() bool { _, e := rec.counts(); return e == i+1 })
	}

	call(0) // every OML variable announced, no dialplan list: nothing to read
	if n := reader.times("IDCRM"); n != 0 {
		t.Fatalf("IDCRM read %d times before it was listed", n)
	}
	names := []string{"IDCRM"}
	tr.SetDialplanVars(names)
	names[0] = "changed by the caller"
	if got := tr.DialplanVars(); len(got) != 1 || got[0] != "IDCRM" {
		t.Fatalf("DialplanVars() = %v, want [IDCRM]", got)
	}
	call(1)
	if n := reader.times("IDCRM"); n != 1 {
		t.Errorf("IDCRM read %d times after SetDialplanVars, want 1", n)
	}
	got, _ := rec.facts(t)
	if len(got) != 2 {
		t.Fatalf("%d Connected, want 2", len(got))
	}
	if v, ok := got[0].DialplanValue("IDCRM"); ok {
		t.Errorf("first call has IDCRM=%q; it was not listed yet", v)
	}
	if v, ok := got[1].DialplanValue("IDCRM"); !ok || v != "abc-9" {
		t.Errorf("second call: IDCRM = %q, %v; want abc-9 read lazily (Missing %v)", v, ok, got[1].Missing)
	}
}
