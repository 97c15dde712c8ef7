package calls_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/config"
)

// BenchmarkIntakeAMI is the daemon's AMI intake per message on the real capture
// busy-40-calls.ami (40 concurrent queue calls of Asterisk 22, replayed in a loop with a
// fresh tracker each time round): the reader with the default asterisk.ami.events filter,
// then the tracker. "names" is the daemon before issue 16; "accept" adds
// Tracker.AcceptAMI, which drops the VarSets of ignored variables before they are copied.
// One op = one message read (kept or not). docs/bench/ami.md gives the callgrind command.
// (The load test's simulated stream is not used: its VarSets are nearly all OML* ones.)
func BenchmarkIntakeAMI(b *testing.B) {
	wanted := map[string]bool{}
	for _, n := range config.DefaultAMIEvents {
		wanted[n] = true
	}
	keep := func(ev []byte) bool { return wanted[string(ev)] }
	for _, withAccept := range []bool{false, true} {
		name := "names"
		if withAccept {
			name = "accept"
		}
		b.Run(name, func(b *testing.B) {
			raw, err := os.ReadFile(sharedFile(b, "ami/busy-40-calls.ami"))
			if err != nil {
				b.Fatal(err)
			}
			raw = raw[bytes.IndexByte(raw, '\n')+1:] // the banner
			newTracker := func() *calls.Tracker {
				tr, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{}})
				if err != nil {
					b.Fatal(err)
				}
				return tr
			}
			tr := newTracker()
			var accept func(*ami.View) bool
			if withAccept {
				accept = func(v *ami.View) bool { return tr.AcceptAMI(v) }
			}
			r := ami.NewReader(bytes.NewReader(raw), ami.Limits{})
			var m ami.Message
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				kept, err := r.ReadMessageSelected(&m, keep, accept)
				if errors.Is(err, io.EOF) { // the stream starts again: a fresh tracker, as a fresh day
					b.StopTimer()
					r, tr = ami.NewReader(bytes.NewReader(raw), ami.Limits{}), newTracker()
					b.StartTimer()
					kept, err = r.ReadMessageSelected(&m, keep, accept)
				}
				if err != nil {
					b.Fatal(err)
				}
				if kept {
					tr.HandleAMI(&m)
				}
			}
		})
	}
}
