package calls_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/calls"
)

// The AMI client's Accept hook (Tracker.AcceptAMI) drops VarSets before they are copied.
// It must never drop one the tracker would use: every real capture gives the same
// Connected and Ended facts read whole or through the filter, and the filter does drop
// most VarSets.
func TestAcceptAMIChangesNoFact(t *testing.T) {
	paths, err := filepath.Glob(sharedFile(t, "ami/*.ami"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no capture: %v", err)
	}
	pjsip, _ := filepath.Glob(sharedFile(t, "pjsip/*/*.ami"))
	totalVarSets, totalDropped := 0, 0
	for _, path := range append(paths, pjsip...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			opts := calls.Options{Resolver: extResolver{}, DialplanPrefixes: []string{"OMLCRM", "CRM_"}}
			whole, wholeRec := startTracker(t, opts)
			for _, m := range readAMI(t, path) {
				whole.HandleAMI(m)
			}
			filtered, filteredRec := startTracker(t, opts)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := ami.NewReader(f, ami.Limits{})
			if _, err := r.ReadBanner(); err != nil {
				t.Skipf("not a session capture: %v", err)
			}
			var m ami.Message
			varSets, dropped := 0, 0
			accept := func(v *ami.View) bool {
				ok := filtered.AcceptAMI(v)
				if string(v.Event()) == "VarSet" {
					varSets++
					if !ok {
						dropped++
					}
				}
				return ok
			}
			for {
				kept, err := r.ReadMessageSelected(&m, nil, accept)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if kept {
					filtered.HandleAMI(&m)
				}
			}
			settle(t, whole)
			settle(t, filtered)
			wc, we := wholeRec.facts(t)
			fc, fe := filteredRec.facts(t)
			// At and a click-to-call's wait come from the replay's clock: not facts of the capture.
			for _, cs := range [][]calls.Connected{wc, fc} {
				for i := range cs {
					cs[i].At, cs[i].CallWaitDuration = time.Time{}, 0 // wall clock of the replay
				}
			}
			for _, es := range [][]calls.Ended{we, fe} {
				for i := range es {
					es[i].At, es[i].Start = time.Time{}, time.Time{}
					for j := range es[i].Agents {
						es[i].Agents[j].At = time.Time{}
					}
				}
			}
			if !reflect.DeepEqual(wc, fc) || !reflect.DeepEqual(we, fe) {
				t.Errorf("facts differ with the filter:\n whole    %+v %+v\n filtered %+v %+v", wc, we, fc, fe)
			}
			totalVarSets += varSets
			totalDropped += dropped
		})
	}
	if totalDropped == 0 || totalDropped == totalVarSets {
		t.Errorf("the filter dropped %d of %d VarSets: want some but not all", totalDropped, totalVarSets)
	}
	t.Logf("dropped %d of %d VarSets", totalDropped, totalVarSets)
}

// The filters run on every VarSet of the stream: they must not allocate.
func TestAcceptVariableAllocatesNothing(t *testing.T) {
	tr, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"__OMLCAMPID", "BRIDGEPEER", "LOCAL(ARG1)", "_MIXMONITOR_FILENAME", "__OmlcrmTicket"} {
		if n := testing.AllocsPerRun(100, func() { tr.AcceptVariable([]byte(name)) }); n != 0 {
			t.Errorf("AcceptVariable(%q): %v allocations", name, n)
		}
	}
}
