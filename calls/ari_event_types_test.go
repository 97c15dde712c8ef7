package calls_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/calls"
)

// ARIEventTypes is complete: every ARI capture, replayed with only those types, gives exactly
// the Connected and Ended facts of the full replay (so an ari.Config.EventTypes filter built
// from it loses nothing), and the list names only types the decoder has a typed form for.
func TestARIEventTypesCoverAdapter(t *testing.T) {
	types := calls.ARIEventTypes()
	for _, typ := range types {
		if !ari.IsTyped(typ) {
			t.Errorf("ARIEventTypes has %q, which ari decodes as Unknown (a typo?)", typ)
		}
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(sharedFile(t, "ari/inbound.jsonl")), "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no ARI captures")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			events := readARI(t, path)
			full, fullRec := startTracker(t, calls.Options{Resolver: extResolver{}})
			filtered, filteredRec := startTracker(t, calls.Options{Resolver: extResolver{}})
			kept := 0
			for _, ev := range events {
				full.HandleARI(ev)
				if slices.Contains(types, ev.EventType()) {
					filtered.HandleARI(ev)
					kept++
				}
			}
			settle(t, full)
			settle(t, filtered)
			wantC, wantE := fullRec.facts(t)
			gotC, gotE := filteredRec.facts(t)
			if len(wantC) == 0 {
				t.Fatalf("the full replay connected no call: the comparison proves nothing")
			}
			if kept == len(events) {
				t.Fatalf("the filter kept all %d events: the comparison proves nothing", kept)
			}
			if !reflect.DeepEqual(gotC, wantC) {
				t.Errorf("Connected with %d of %d events:\n%+v\nwant\n%+v", kept, len(events), gotC, wantC)
			}
			if !reflect.DeepEqual(gotE, wantE) {
				t.Errorf("Ended with %d of %d events:\n%+v\nwant\n%+v", kept, len(events), gotE, wantE)
			}
		})
	}
}
