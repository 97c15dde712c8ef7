package calls_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/calls"
)

// The ARI client's filter with the daemon's settings (ARIEventTypes and
// Tracker.AcceptVariable) skips events undecoded, ChannelVarsets of ignored variables
// included. Every real capture gives the same facts replayed whole or through it, and it
// skips most ChannelVarsets.
func TestARIFilterWithAcceptVariableChangesNoFact(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(sharedFile(t, "ari/inbound.jsonl")), "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no ARI captures")
	}
	varsets, skippedVarsets := 0, 0
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			opts := calls.Options{Resolver: extResolver{}, DialplanPrefixes: []string{"OMLCRM", "CRM_"}}
			full, fullRec := startTracker(t, opts)
			filtered, filteredRec := startTracker(t, opts)
			f := ari.NewEventFilter(calls.ARIEventTypes(), filtered.AcceptVariable)
			for _, line := range bytes.Split(data, []byte("\n")) {
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				ev, err := ari.DecodeEvent(line)
				if err != nil {
					t.Fatalf("decoding %.80s: %v", line, err)
				}
				full.HandleARI(ev)
				typ, skip := f.Skip(line)
				if ev.EventType() == "ChannelVarset" {
					varsets++
					if skip {
						skippedVarsets++
					}
				}
				if skip {
					if string(typ) != ev.EventType() {
						t.Errorf("skipped as %q, decodes as %q", typ, ev.EventType())
					}
					continue
				}
				filtered.HandleARI(ev)
			}
			settle(t, full)
			settle(t, filtered)
			wantC, wantE := fullRec.facts(t)
			gotC, gotE := filteredRec.facts(t)
			if !reflect.DeepEqual(gotC, wantC) || !reflect.DeepEqual(gotE, wantE) {
				t.Errorf("facts differ with the filter:\n got  %+v %+v\n want %+v %+v", gotC, gotE, wantC, wantE)
			}
		})
	}
	if skippedVarsets == 0 || skippedVarsets == varsets {
		t.Errorf("skipped %d of %d ChannelVarsets: want some but not all", skippedVarsets, varsets)
	}
	t.Logf("skipped %d of %d ChannelVarsets undecoded", skippedVarsets, varsets)
}
