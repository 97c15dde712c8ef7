package loadtest

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkWaitPrecision: how late a 300 µs wait ends, with a plain timer (the
// generator before) and with waitUntil (docs/benchmarks.md, "Generator punctuality").
// One op = one wait; the overshoot percentiles are reported as metrics.
func BenchmarkWaitPrecision(b *testing.B) {
	const d = 300 * time.Microsecond
	for _, mode := range []string{"timer", "waitUntil"} {
		b.Run(mode, func(b *testing.B) {
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			late := make([]time.Duration, 0, b.N)
			for b.Loop() {
				at := time.Now().Add(d)
				if mode == "timer" {
					t.Reset(d)
					<-t.C
				} else if err := waitUntil(context.Background(), t, at); err != nil {
					b.Fatal(err)
				}
				late = append(late, time.Since(at))
			}
			slices.Sort(late)
			b.ReportMetric(float64(late[len(late)/2].Microseconds()), "late-p50-µs")
			b.ReportMetric(float64(late[len(late)*99/100].Microseconds()), "late-p99-µs")
		})
	}
}
