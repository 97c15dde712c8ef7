package calls_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
)

// benchStream is 1,000 interleaved simulated calls of every scenario, with the
// Newexten / VarSet noise of a real stream, as AMI bytes.
func benchStream(b *testing.B) []byte {
	b.Helper()
	ids := callsim.NewIDs(simBase.Unix())
	var cs []*callsim.Call
	for i := range 1000 {
		sc := callsim.Scenarios()[i%len(callsim.Scenarios())]
		cs = append(cs, callsim.Build(ids, callsim.Params{Scenario: sc, Agent: callsim.Agent{ID: 1 + i%300}, SecondAgent: callsim.Agent{ID: 400 + i%300}}))
	}
	var buf bytes.Buffer
	if err := callsim.WriteAMI(&buf, callsim.Interleave(cs, 5*time.Millisecond)); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkTracker measures the intake pipeline: the AMI reader parsing the stream and
// the tracker handling every message (one op = one AMI message; most are dropped by the
// adapter, as in a real stream). Compare with BenchmarkAMIReader: the difference is the
// tracker's share.
func BenchmarkTracker(b *testing.B) {
	newTracker := func() *calls.Tracker {
		tr, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{}})
		if err != nil {
			b.Fatal(err)
		}
		return tr
	}
	tr := newTracker()
	// At the end of the stream its ids start again: a fresh tracker, as a fresh day.
	benchAMIStream(b, func(m *ami.Message) { tr.HandleAMI(m) }, func() { tr = newTracker() })
}

// BenchmarkAMIReader parses the same stream with the AMI reader, for comparison: the
// reader, not the tracker, must be the bottleneck.
func BenchmarkAMIReader(b *testing.B) {
	benchAMIStream(b, func(*ami.Message) {}, func() {})
}

// benchAMIStream reads the benchmark stream message by message (one op = one AMI
// message), looping over it, and hands each message to handle; restart runs, outside
// the timer, each time the stream starts again.
func benchAMIStream(b *testing.B, handle func(*ami.Message), restart func()) {
	raw := benchStream(b)
	var m ami.Message
	r := ami.NewReader(bytes.NewReader(raw), ami.Limits{})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		err := r.ReadMessage(&m)
		if errors.Is(err, io.EOF) {
			b.StopTimer()
			r = ami.NewReader(bytes.NewReader(raw), ami.Limits{})
			restart()
			b.StartTimer()
			err = r.ReadMessage(&m)
		}
		if err != nil {
			b.Fatal(err)
		}
		handle(&m)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkCallsimAMI measures generating and rendering one simulated inbound call
// (the load test needs ≥ 200 calls/s).
func BenchmarkCallsimAMI(b *testing.B) {
	ids := callsim.NewIDs(simBase.Unix())
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := callsim.Build(ids, callsim.Params{Scenario: callsim.InboundQueue, Agent: callsim.Agent{ID: 1 + i%100}})
		buf = buf[:0]
		for j := range c.Steps {
			buf = c.Steps[j].AppendAMI(buf)
		}
	}
}
