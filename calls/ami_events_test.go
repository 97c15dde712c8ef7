package calls_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/config"
)

// replayAMIFacts replays the messages whose event passes keep and returns the tracker's
// Connected and Ended facts, and how many messages were kept.
func replayAMIFacts(t *testing.T, msgs []*ami.Message, keep func(event string) bool) (connected []calls.Connected, ended []calls.Ended, kept int) {
	t.Helper()
	tr, rec := startTracker(t, calls.Options{Resolver: extResolver{}, DialplanPrefixes: []string{"Omlcrm", "Crm"}})
	for _, m := range msgs {
		if ev := m.Get("Event"); ev == "" || keep(ev) {
			tr.HandleAMI(m)
			kept++
		}
	}
	settle(t, tr)
	c, e := rec.facts(t)
	// Captures without Timestamp headers time events by the wall clock: compare the
	// rest.
	for i := range c {
		c[i].At, c[i].CallWaitDuration = time.Time{}, 0
	}
	for i := range e {
		e[i].At, e[i].Start = time.Time{}, time.Time{}
		for j := range e[i].Agents {
			e[i].Agents[j].At = time.Time{}
		}
	}
	return c, e, kept
}

// AMIEvents is complete: every AMI capture replayed with only those events gives exactly
// the Connected and Ended facts of the full replay (so asterisk.ami.events and the
// server-side Filter built from it lose nothing); it names the events the tracker
// needs, and the configuration's default is that list.
func TestAMIEventsCoverAdapter(t *testing.T) {
	names := calls.AMIEvents()
	if !sameSet(config.DefaultAMIEvents, names) {
		t.Errorf("config.DefaultAMIEvents = %v, want the tracker's %v", config.DefaultAMIEvents, names)
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(sharedFile(t, "ami/busy-40-calls.ami")), "*.ami"))
	if len(files) == 0 {
		t.Fatal("no AMI captures")
	}
	withCalls := 0
	for _, path := range files {
		msgs := readAMI(t, path)
		wantC, wantE, all := replayAMIFacts(t, msgs, func(string) bool { return true })
		if len(wantC) == 0 {
			continue // no connected call (login failures, actions): nothing to compare
		}
		withCalls++
		gotC, gotE, kept := replayAMIFacts(t, msgs, func(ev string) bool { return slices.Contains(names, ev) })
		if kept == all {
			t.Errorf("%s: the list kept all %d messages: the comparison proves nothing", filepath.Base(path), all)
		}
		if !reflect.DeepEqual(gotC, wantC) || !reflect.DeepEqual(gotE, wantE) {
			t.Errorf("%s: with %d of %d messages (only %v) the facts differ:\nConnected %+v\nwant      %+v\nEnded %+v\nwant  %+v",
				filepath.Base(path), kept, all, names, gotC, wantC, gotE, wantE)
		}
	}
	if withCalls < 5 {
		t.Fatalf("only %d captures connected a call", withCalls)
	}
	// The names the tracker keeps an oversized event of (it needs them) are the list,
	// VarSet aside (kept or not by its variable).
	tr, _ := startTracker(t, calls.Options{Resolver: extResolver{}})
	for _, n := range append(names, "Newstate", "DialBegin", "QueueCallerJoin", "UserEvent", "FullyBooted") {
		if n == "VarSet" {
			continue
		}
		if kept, listed := !tr.SkipOversizedAMI(n, ""), slices.Contains(names, n); kept != listed {
			t.Errorf("%s: SkipOversizedAMI keeps it %v, AMIEvents lists it %v", n, kept, listed)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
