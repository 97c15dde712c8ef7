package ari_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
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

// BenchmarkClientEvents measures the whole intake: aritest writes the event mix on a real
// websocket on 127.0.0.1, the client reads, bounds, decodes and calls Handler. Both ends run
// on this machine, so the figure includes the server's cost.
func BenchmarkClientEvents(b *testing.B) {
	lines, size := captureMix(b)
	srv, err := aritest.New(aritest.Options{Username: "u", Password: "p"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	got := make(chan struct{}, 1024)
	c, err := ari.Dial(context.Background(), ari.Config{
		URL: srv.URL(), Username: "u", Password: "p", App: "bench", SubscribeAll: true,
		Handler: func(ari.Event) { got <- struct{}{} },
		Logger:  zerolog.Nop(),
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
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
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
	for n := 0; n < b.N; {
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
