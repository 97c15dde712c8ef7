package ami_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/config"
)

// BenchmarkAMIReadCapture reads the real Asterisk 22 capture busy-40-calls.ami (set 1 of
// ../shared/testdata: 4,496 messages after the banner, 40 concurrent queue calls) over and
// over from memory. One op = one message. "full" parses every message into a Message;
// "skip" drops every event on its name (responses are not events and are always read, so
// the few in the capture are taken out of the stream first); "daemon-names" keeps the
// events the daemon asks for by default (asterisk.ami.events) and skips the others;
// "daemon" also drops, before copying them, the VarSets of variables the tracker ignores
// (Tracker.AcceptAMI), as the daemon runs.
//
// The per-message instruction count is measured with callgrind as docs/bench/ami.md
// describes: two runs of "full" at two stream lengths, the difference divided by the
// difference in messages.
func BenchmarkAMIReadCapture(b *testing.B) {
	data, err := os.ReadFile(capturePath(b, "busy-40-calls.ami"))
	if err != nil {
		b.Fatal(err)
	}
	data = data[bytes.IndexByte(data, '\n')+1:] // the banner
	wanted := map[string]bool{}
	for _, n := range config.DefaultAMIEvents {
		wanted[n] = true
	}
	b.Run("full", func(b *testing.B) { benchCapture(b, data, nil, nil) })
	b.Run("skip", func(b *testing.B) { benchCapture(b, eventsOnly(b, data), func([]byte) bool { return false }, nil) })
	names := func(ev []byte) bool { return wanted[string(ev)] }
	b.Run("daemon-names", func(b *testing.B) { benchCapture(b, data, names, nil) })
	tr, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("daemon", func(b *testing.B) { benchCapture(b, data, names, tr.AcceptAMI) })
}

// eventsOnly returns the messages of stream that are events, in wire form.
func eventsOnly(b *testing.B, stream []byte) []byte {
	r := ami.NewReader(bytes.NewReader(stream), ami.Limits{})
	var out []byte
	var m ami.Message
	for {
		if err := r.ReadMessage(&m); err != nil {
			break
		}
		if !m.IsResponse() {
			out = append(out, m.Raw()...)
		}
	}
	if len(out) == 0 {
		b.Fatal("no event in the stream")
	}
	return out
}

// loopReader serves data over and over without copying it twice.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func benchCapture(b *testing.B, data []byte, keep func([]byte) bool, accept func(*ami.View) bool) {
	r := ami.NewReader(&loopReader{data: data}, ami.Limits{})
	var m ami.Message
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := r.ReadMessageSelected(&m, keep, accept); err != nil {
			b.Fatal(err)
		}
	}
}
