package ari_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/calls"
)

// captureMix is every line of every real capture: the ARI event mix of OMniLeads-like calls.
func captureMix(b *testing.B) (lines [][]byte, size int) {
	b.Helper()
	files, _ := filepath.Glob(filepath.Join(captureDir(b), "*.jsonl"))
	for _, path := range files {
		for _, l := range readLines(b, path) {
			lines = append(lines, l)
			size += len(l)
		}
	}
	if len(lines) == 0 {
		b.Fatal("no capture lines")
	}
	return lines, size
}

// BenchmarkDecodeEvent decodes the real event mix; one op is one event.
func BenchmarkDecodeEvent(b *testing.B) {
	lines, size := captureMix(b)
	benchDecode(b, lines, size)
}

// BenchmarkClientEvents measures the whole intake: aritest writes the event mix on a real
// websocket on 127.0.0.1, the client reads, bounds, decodes and calls Handler. Both ends run
// on this machine, so the figure includes the server's cost.
func BenchmarkClientEvents(b *testing.B) {
	lines, size := captureMix(b)
	benchClient(b, lines, size, nil)
}

// queueObserverMix is the capture of one OMniLeads inbound queue call as the daemon's
// observer app sees it (subscribeAll): the realistic mix for the EventTypes filter.
func queueObserverMix(b *testing.B) (lines [][]byte, size int) {
	b.Helper()
	lines = readLines(b, filepath.Join(captureDir(b), "oml-inbound-queue-observer.jsonl"))
	for _, l := range lines {
		size += len(l)
	}
	return lines, size
}

// BenchmarkClientQueueCall* replay the queue-call capture through the whole intake, without a
// filter and with the daemon's filter (calls.ARIEventTypes). One op is one event sent.
func BenchmarkClientQueueCallAll(b *testing.B) {
	lines, size := queueObserverMix(b)
	benchClient(b, lines, size, nil)
}

func BenchmarkClientQueueCallFiltered(b *testing.B) {
	lines, size := queueObserverMix(b)
	benchClient(b, lines, size, calls.ARIEventTypes())
}

// BenchmarkDecodeQueueCallFiltered is the client's per-event decision alone on the queue-call
// mix: scan the type, skip the unwanted event, decode the wanted one. It calls
// ScanEventType (which checks the syntax of every event) where the client checks it only for
// skipped ones, so it slightly overstates the cost.
func BenchmarkDecodeQueueCallFiltered(b *testing.B) {
	lines, size := queueObserverMix(b)
	wanted := map[string]bool{}
	for _, t := range calls.ARIEventTypes() {
		wanted[t] = true
	}
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	i := 0
	start := time.Now()
	for b.Loop() {
		l := lines[i]
		if t, ok := ari.ScanEventType(l); !ok || wanted[string(t)] {
			if _, err := ari.DecodeEvent(l); err != nil {
				b.Fatal(err)
			}
		}
		i++
		if i == len(lines) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDecodeQueueCallAll is the same mix fully decoded (today's cost without a filter).
func BenchmarkDecodeQueueCallAll(b *testing.B) {
	lines, size := queueObserverMix(b)
	benchDecode(b, lines, size)
}

// benchDecode decodes lines round-robin, one event per op, reporting events/s.
func benchDecode(b *testing.B, lines [][]byte, size int) {
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	i := 0
	start := time.Now()
	for b.Loop() {
		if _, err := ari.DecodeEvent(lines[i]); err != nil {
			b.Fatal(err)
		}
		i++
		if i == len(lines) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func benchClient(b *testing.B, lines [][]byte, size int, eventTypes []string) {
	srv, err := aritest.New(aritest.Options{Username: "u", Password: "p"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	got := make(chan struct{}, 1024)
	c, err := ari.Dial(context.Background(), ari.Config{
		URL: srv.URL(), Username: "u", Password: "p", App: "bench", SubscribeAll: true,
		EventTypes: eventTypes,
		Handler:    func(ari.Event) { got <- struct{}{} },
		Logger:     zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}
	if err := srv.WaitClients(ctx, 1); err != nil {
		b.Fatal(err)
	}
	// delivered[i]: whether lines[i] reaches Handler; the receiver waits for exactly those.
	delivered := make([]bool, len(lines))
	for i, l := range lines {
		ev, err := ari.DecodeEvent(l)
		if err != nil {
			b.Fatal(err)
		}
		delivered[i] = eventTypes == nil || slices.Contains(eventTypes, ev.EventType())
	}
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	want := 0
	for i := 0; i < b.N; i++ {
		if delivered[i%len(lines)] {
			want++
		}
	}
	// Timing ends at the last delivered event: skipped events sent after it (at most one
	// capture's worth) may still be in flight, negligible against b.N.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := srv.Send(ctx, lines[i%len(lines)]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for n := 0; n < want; {
		select {
		case <-got:
			n++
		case err := <-done:
			if err != nil {
				b.Fatal(err)
			}
			done = nil // all sent; keep receiving
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkDecodeCapturesDaemon is the daemon's per-event cost on every event of the real
// captures: the client's filter (calls.ARIEventTypes and Tracker.AcceptVariable, as
// cmd/oml-crm sets them) skips unused types and ChannelVarsets of ignored variables
// undecoded, and the rest is decoded. Compare with BenchmarkDecodeEvent (everything
// decoded). docs/bench/ari.md gives the callgrind command for instructions per event.
func BenchmarkDecodeCapturesDaemon(b *testing.B) {
	tr, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{}})
	if err != nil {
		b.Fatal(err)
	}
	benchFilter(b, ari.NewEventFilter(calls.ARIEventTypes(), tr.AcceptVariable))
}

// BenchmarkDecodeCapturesTypesOnly is the same with the type filter alone (every
// ChannelVarset decoded): the daemon before Config.AcceptVariable.
func BenchmarkDecodeCapturesTypesOnly(b *testing.B) {
	benchFilter(b, ari.NewEventFilter(calls.ARIEventTypes(), nil))
}

func benchFilter(b *testing.B, f *ari.EventFilter) {
	lines, size := captureMix(b)
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l := lines[i]
		if _, _, err := f.Decode(l); err != nil {
			b.Fatal(err)
		}
		i++
		if i == len(lines) {
			i = 0
		}
	}
}
