package calls_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/config"
)

// Every real capture, sent through the fake Asterisk with the daemon's server-side rule
// (asterisk.ami.server_filter: the default events and the tracker's VarSets), gives the
// tracker exactly the connects and ends it finds in the whole unfiltered capture, while
// fewer events cross the socket.
func TestServerFilterTracksCallsIdentically(t *testing.T) {
	paths, err := filepath.Glob(sharedFile(t, "ami/*.ami"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	fewer := 0
	for _, path := range paths {
		name := filepath.Base(path)
		if name == "actions.ami" || name == "bad-login.ami" || name == "unauthenticated.ami" {
			continue // actions only
		}
		t.Run(name, func(t *testing.T) {
			if filteredRun(t, path) {
				fewer++
			}
		})
	}
	if fewer == 0 {
		t.Error("the rule held back no event of any capture")
	}
}

// filteredRun compares one capture's facts, direct and filtered; true if the filter
// held back events.
func filteredRun(t *testing.T, path string) bool {
	direct, directRec := startTracker(t, calls.Options{Resolver: extResolver{}, DialplanPrefixes: []string{"Omlcrm", "Crm"}})
	all := readAMI(t, path)
	for _, m := range all {
		direct.HandleAMI(m)
	}
	settle(t, direct)
	wantC, wantE := directRec.facts(t)

	tr, rec := startTracker(t, calls.Options{Resolver: extResolver{}, DialplanPrefixes: []string{"Omlcrm", "Crm"}})
	rule, ok := ami.EventFilterRule(config.DefaultAMIEvents, tr.AMIVarSetFilter())
	if !ok {
		t.Fatal("no rule for the default events")
	}
	srv := amitest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var received atomic.Int64
	cl, err := ami.Dial(ctx, ami.Config{
		Address: srv.Addr(), Username: srv.Username(), Secret: srv.Secret(),
		Filters: []string{rule}, EventNames: config.DefaultAMIEvents, Accept: tr.AcceptAMI,
		Handler: func(m *ami.Message) { received.Add(1); tr.HandleAMI(m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := srv.WaitLogins(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Filter rule", func() bool { return len(srv.Filters()) == 1 })
	received.Store(0) // the login's FullyBooted
	var sent atomic.Int64
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := srv.ReplayWith(f, amitest.ReplayOptions{Before: func(*ami.Message) { sent.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(ctx); err != nil { // answered after every event before it was handled
		t.Fatal(err)
	}
	settle(t, tr)
	gotC, gotE := rec.facts(t)
	if show(gotC) != show(wantC) || endedIDs(gotE) != endedIDs(wantE) {
		t.Errorf("filtered: %s ended %s\nwhole:    %s ended %s", show(gotC), endedIDs(gotE), show(wantC), endedIDs(wantE))
	}
	t.Logf("%d events replayed, %d passed the rule and the client's filters", n, received.Load())
	return received.Load() < int64(n)
}

func show(cs []calls.Connected) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%+v missing=%v; ", wantOf(c), c.Missing)
	}
	return b.String()
}

func endedIDs(es []calls.Ended) string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.CallID)
	}
	return strings.Join(ids, ",")
}
