package callsim_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/callsim"
)

// The AMI rendering has Asterisk 22's header names and order (as in the oml-*.ami
// captures) and every ARI line decodes as the event it stands for.
func TestRenderingMatchesAsterisk(t *testing.T) {
	ids := callsim.NewIDs(1795483380)
	for _, sc := range callsim.AllScenarios() {
		c := callsim.Build(ids, callsim.Params{Scenario: sc, Agent: callsim.Agent{ID: 3}, ChanVars: []string{"OMLCALLID", "OMLAGENTID"}})
		steps := callsim.Interleave([]*callsim.Call{c}, 0)
		var buf bytes.Buffer
		if err := callsim.WriteAMI(&buf, steps); err != nil {
			t.Fatal(err)
		}
		r := ami.NewReader(&buf, ami.Limits{})
		var m ami.Message
		n := 0
		for {
			err := r.ReadMessage(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: message %d: %v", sc, n, err)
			}
			if m.Headers[0].Key != "Event" || m.Headers[1].Key != "Privilege" {
				t.Fatalf("%s: message %d starts with %v", sc, n, m.Headers[:2])
			}
			if ev := m.Event(); ev == "LocalOptimizationBegin" || ev == "LocalOptimizationEnd" {
				checkLocalOptimization(t, &m)
			}
			if m.Event() == "AgentConnect" {
				var keys []string
				for _, h := range m.Headers {
					keys = append(keys, h.Key)
				}
				got := strings.Join(keys, ",")
				want := "Event,Privilege,Channel,ChannelState,ChannelStateDesc,CallerIDNum,CallerIDName,ConnectedLineNum,ConnectedLineName," +
					"Language,AccountCode,Context,Exten,Priority,Uniqueid,Linkedid,ChanVariable,ChanVariable," +
					"DestChannel,DestChannelState,DestChannelStateDesc,DestCallerIDNum,DestCallerIDName,DestConnectedLineNum,DestConnectedLineName," +
					"DestLanguage,DestAccountCode,DestContext,DestExten,DestPriority,DestUniqueid,DestLinkedid,DestChanVariable,DestChanVariable," +
					"Queue,Interface,MemberName,HoldTime,RingTime"
				if got != want {
					t.Errorf("AgentConnect headers\n got  %s\n want %s", got, want)
				}
			}
			n++
		}
		if n != len(c.Steps) {
			t.Errorf("%s: %d AMI messages, %d steps", sc, n, len(c.Steps))
		}
		lines := callsim.ARILines(steps, time.Unix(1795483380, 0))
		if len(lines) == 0 {
			t.Fatalf("%s: no ARI events", sc)
		}
		for _, l := range lines {
			ev, err := ari.DecodeEvent(l)
			if err != nil {
				t.Fatalf("%s: %v: %s", sc, err, l)
			}
			if _, unknown := ev.(*ari.Unknown); unknown {
				t.Errorf("%s: untyped ARI event %s", sc, l)
			}
		}
		wantConnects := map[callsim.Scenario]int{callsim.Abandon: 0, callsim.BlindTransfer: 2, callsim.AttendedTransfer: 2}
		w, ok := wantConnects[sc]
		if !ok {
			w = 1
		}
		if len(c.Expected) != w {
			t.Errorf("%s: %d expected connects, want %d", sc, len(c.Expected), w)
		}
	}
}

// chanKeys are the channel headers Asterisk 22 writes for a channel snapshot, after the
// prefix (with two ChanVariable lines here).
var chanKeys = []string{"Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
	"ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid", "ChanVariable", "ChanVariable"}

// checkLocalOptimization: LocalOptimizationBegin/End carry the LocalOne (;1) and
// LocalTwo (;2) snapshots, Begin the Source snapshot (the agent's phone), DestUniqueId
// (;1, the half it replaces) and Id, End Success and the same Id, as Asterisk 20/22
// document them.
func checkLocalOptimization(t *testing.T, m *ami.Message) {
	t.Helper()
	want := []string{"Event", "Privilege"}
	prefixes := []string{"LocalOne", "LocalTwo"}
	if m.Event() == "LocalOptimizationBegin" {
		prefixes = append(prefixes, "Source")
	}
	for _, p := range prefixes {
		for _, k := range chanKeys {
			want = append(want, p+k)
		}
	}
	if m.Event() == "LocalOptimizationBegin" {
		want = append(want, "DestUniqueId", "Id")
	} else {
		want = append(want, "Success", "Id")
	}
	var keys []string
	for _, h := range m.Headers {
		keys = append(keys, h.Key)
	}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("%s headers\n got  %s\n want %s", m.Event(), strings.Join(keys, ","), strings.Join(want, ","))
	}
	one, two := m.Get("LocalOneChannel"), m.Get("LocalTwoChannel")
	if !strings.HasPrefix(one, "Local/1003@oml-agent-") || !strings.HasSuffix(one, ";1") || two != strings.TrimSuffix(one, "1")+"2" {
		t.Errorf("%s: LocalOne %q, LocalTwo %q", m.Event(), one, two)
	}
	switch m.Event() {
	case "LocalOptimizationBegin":
		if !strings.HasPrefix(m.Get("SourceChannel"), "PJSIP/1003-") || m.Get("DestUniqueId") != m.Get("LocalOneUniqueid") {
			t.Errorf("LocalOptimizationBegin: Source %q, DestUniqueId %q", m.Get("SourceChannel"), m.Get("DestUniqueId"))
		}
	case "LocalOptimizationEnd":
		if m.Get("Success") != "Yes" {
			t.Errorf("LocalOptimizationEnd: Success %q", m.Get("Success"))
		}
	}
}

// The LocalOptimization call: the phone replaces the Local ;1 in the customer's bridge
// (BridgeEnter with SwapUniqueid), ARI shows only the bridge moves and hangups, and the
// call goes on after both Local halves hung up.
func TestLocalOptimizationSteps(t *testing.T) {
	ids := callsim.NewIDs(1795483380)
	c := callsim.Build(ids, callsim.Params{Scenario: callsim.LocalOptimization, Agent: callsim.Agent{ID: 3}, AgentPJSIP: true})
	var buf bytes.Buffer
	if err := callsim.WriteAMI(&buf, callsim.Interleave([]*callsim.Call{c}, 0)); err != nil {
		t.Fatal(err)
	}
	r := ami.NewReader(&buf, ami.Limits{})
	var order []string
	var one, phone, customerBridge string
	var m ami.Message
	for r.ReadMessage(&m) == nil {
		ev, ch := m.Event(), m.Get("Channel")
		switch {
		case ev == "AgentCalled" && m.Get("Interface") != "Local/1003@oml-agent":
			t.Errorf("member interface %q, want Local/1003@oml-agent (no /n: it may optimise)", m.Get("Interface"))
		case ev == "AgentConnect":
			one = m.Get("DestChannel")
		case ev == "BridgeEnter" && ch == one:
			customerBridge = m.Get("BridgeUniqueid")
		case ev == "LocalOptimizationBegin":
			phone = m.Get("SourceChannel")
			order = append(order, ev)
		case ev == "LocalOptimizationEnd":
			order = append(order, ev)
		case ev == "BridgeEnter" && ch == phone && m.Get("BridgeUniqueid") == customerBridge:
			if m.Get("SwapUniqueid") == "" {
				t.Error("the phone's BridgeEnter has no SwapUniqueid")
			}
			order = append(order, "phone enters")
		case ev == "BridgeLeave" && ch == one:
			order = append(order, "one leaves")
		case ev == "Hangup" && strings.HasPrefix(ch, "Local/1003@"):
			order = append(order, "hangup "+ch[len(ch)-1:])
		case ev == "Hangup":
			order = append(order, "hangup "+strings.SplitN(ch, "/", 2)[0])
		}
	}
	want := "LocalOptimizationBegin,phone enters,one leaves,LocalOptimizationEnd,hangup 1,hangup 2,hangup Local,hangup PJSIP,hangup Local"
	if got := strings.Join(order, ","); got != want {
		t.Errorf("order\n got  %s\n want %s", got, want)
	}
	if len(c.Expected) != 1 || c.Expected[0].AgentChannel != one {
		t.Errorf("expected %+v, want one connect on %s", c.Expected, one)
	}
	live := map[string]bool{}
	for _, l := range c.Live {
		live[l.Name] = true
	}
	if !live[phone] || live[one] || len(live) != 3 {
		t.Errorf("live after the optimisation %v, want the customer's pair and %s", live, phone)
	}
}

// Calls built from one IDs never share a unique id, and Interleave keeps time order.
func TestInterleaveAndIDs(t *testing.T) {
	ids := callsim.NewIDs(1795483380)
	a := callsim.Build(ids, callsim.Params{Scenario: callsim.InboundQueue})
	b := callsim.Build(ids, callsim.Params{Scenario: callsim.Preview})
	seen := map[string]bool{}
	for _, c := range []*callsim.Call{a, b} {
		for _, ch := range c.Channels {
			if seen[ch.Uniqueid] {
				t.Errorf("unique id %s used twice", ch.Uniqueid)
			}
			seen[ch.Uniqueid] = true
		}
	}
	steps := callsim.Interleave([]*callsim.Call{a, b}, 500*time.Millisecond)
	if len(steps) != len(a.Steps)+len(b.Steps) {
		t.Fatalf("%d steps, want %d", len(steps), len(a.Steps)+len(b.Steps))
	}
	for i := 1; i < len(steps); i++ {
		if steps[i].At < steps[i-1].At {
			t.Fatalf("step %d at %v before step %d at %v", i, steps[i].At, i-1, steps[i-1].At)
		}
	}
	if _, err := callsim.ParseScenario("attended-transfer"); err != nil {
		t.Error(err)
	}
	if _, err := callsim.ParseScenario("nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
}
