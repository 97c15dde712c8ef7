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
	for _, sc := range callsim.Scenarios() {
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
