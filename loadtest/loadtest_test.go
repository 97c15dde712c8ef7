package loadtest

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestBucketsAreContiguousAndMonotonic(t *testing.T) {
	for i := 0; i < numBuckets-1; i++ {
		up := bucketUpper(i)
		if got := bucketOf(up); got != i {
			t.Fatalf("bucketOf(bucketUpper(%d)=%d) = %d", i, up, got)
		}
		if got := bucketOf(up + 1); got != i+1 {
			t.Fatalf("bucketOf(%d) = %d, want the next bucket %d", up+1, got, i+1)
		}
	}
	if got := bucketOf(1<<63 - 1); got != numBuckets-1 {
		t.Errorf("largest duration in bucket %d, want the last (%d)", got, numBuckets-1)
	}
}

func TestRecorderQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRecorder()
	var samples []time.Duration
	var sum time.Duration
	for i := 0; i < 100_000; i++ {
		// Log-normal-ish latencies from ~10µs to ~1s.
		d := time.Duration(float64(time.Microsecond) * 10 * (1 + rng.ExpFloat64()*rng.ExpFloat64()*50))
		samples = append(samples, d)
		sum += d
		r.Record(d)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		idx := int(float64(len(samples))*q+0.999999) - 1
		exact := samples[idx]
		got := r.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/128+1 {
			t.Errorf("q%.3f = %v, exact %v: outside [exact, exact+0.8%%]", q, got, exact)
		}
	}
	s := r.Summary()
	if s.Count != 100_000 || s.Min != samples[0] || s.Max != samples[len(samples)-1] || s.Mean != sum/100_000 {
		t.Errorf("summary = %+v; min %v max %v mean %v", s, samples[0], samples[len(samples)-1], sum/100_000)
	}
}

func TestRecorderEdgeCases(t *testing.T) {
	r := NewRecorder()
	if s := r.Summary(); s != (Summary{}) || r.Quantile(0.99) != 0 {
		t.Errorf("empty recorder: %+v", s)
	}
	r.Record(3)
	r.Record(0)
	if s := r.Summary(); s.Min != 0 || s.Max != 3 || s.P50 != 0 || s.P99 != 3 || s.Negative != 0 {
		t.Errorf("tiny values: %+v", s)
	}
}

// A latency below zero is a clock problem of the measurement: it is kept as it is,
// counted, and ranks below every positive sample, never folded into 0.
func TestRecorderKeepsNegativeSamples(t *testing.T) {
	r := NewRecorder()
	r.Record(-5 * time.Millisecond)
	r.Record(-2 * time.Millisecond)
	for i := 1; i <= 8; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	s := r.Summary()
	if s.Count != 10 || s.Negative != 2 || s.Min != -5*time.Millisecond || s.Max != 8*time.Millisecond {
		t.Errorf("summary = %+v", s)
	}
	if want := (36 - 7) * time.Millisecond / 10; s.Mean != want {
		t.Errorf("mean %v, want %v", s.Mean, want)
	}
	// Ranks 1 and 2 are the negative samples, within the bucket width (0.8%).
	for q, want := range map[float64]time.Duration{0.1: -5 * time.Millisecond, 0.2: -2 * time.Millisecond} {
		got := r.Quantile(q)
		if got < want || got > want-want/128 {
			t.Errorf("q%.1f = %v, want %v within its bucket", q, got, want)
		}
	}
	if got := r.Quantile(0.3); got < time.Millisecond || got > time.Millisecond+time.Millisecond/128 {
		t.Errorf("q0.3 = %v, want 1ms", got)
	}
	m := NewRecorder()
	m.Merge(r)
	if m.Summary() != s {
		t.Errorf("merged %+v, want %+v", m.Summary(), s)
	}
	low := NewRecorder()
	low.Record(time.Duration(math.MinInt64))
	if s := low.Summary(); s.Min != math.MinInt64 || s.Max != math.MinInt64 || s.Negative != 1 || s.P50 >= 0 {
		t.Errorf("MinInt64 recorded as %+v", s)
	}
}

func TestRecorderMergeAndConcurrentRecord(t *testing.T) {
	total := NewRecorder()
	var wg sync.WaitGroup
	parts := make([]*Recorder, 4)
	for w := range parts {
		parts[w] = NewRecorder()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 10_000; i++ {
				d := time.Duration(i*(w+1)) * time.Microsecond
				parts[w].Record(d)
				total.Record(d)
			}
		}()
	}
	wg.Wait()
	merged := NewRecorder()
	for _, p := range parts {
		merged.Merge(p)
	}
	if a, b := merged.Summary(), total.Summary(); a != b {
		t.Errorf("merged %+v != recorded together %+v", a, b)
	}
	if s := merged.Summary(); s.Count != 40_000 || s.Min != time.Microsecond || s.Max != 40*time.Millisecond {
		t.Errorf("merged = %+v", s)
	}
}

func TestLedger(t *testing.T) {
	l := NewLedger()
	t0 := time.Unix(1_700_000_000, 0)
	l.Expect("a", t0)
	l.Expect("b", t0)
	l.Expect("c", t0)
	l.Expect("a", t0.Add(time.Hour)) // re-expecting keeps the first time
	if d, first := l.Observe("a", t0.Add(3*time.Millisecond)); !first || d != 3*time.Millisecond {
		t.Errorf("first observation = %v %v", d, first)
	}
	if _, first := l.Observe("a", t0.Add(4*time.Millisecond)); first {
		t.Error("second observation reported as first")
	}
	l.Observe("b", t0.Add(time.Millisecond))
	l.Observe("zzz", t0)
	got := l.Totals()
	want := LedgerTotals{Expected: 3, Delivered: 2, Lost: 1, Duplicates: 1, Unexpected: 1}
	if got != want {
		t.Errorf("totals = %+v, want %+v", got, want)
	}
	if m := l.Missing(10); len(m) != 1 || m[0] != "c" {
		t.Errorf("missing = %v", m)
	}
	if s := l.Latency().Summary(); s.Count != 2 || s.Max != 3*time.Millisecond {
		t.Errorf("latency = %+v", s)
	}
}

func TestReadRSS(t *testing.T) {
	rss, err := ReadRSS(0)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if rss < 1<<20 {
		t.Errorf("RSS of a Go test binary = %d bytes, want at least 1 MiB", rss)
	}
	if _, err := ReadRSS(1 << 30); err == nil {
		t.Error("RSS of a process that cannot exist: no error")
	}
}

func TestScrapeGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_goroutines", Help: "goroutines"})
	g.Set(1234)
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_goroutines_other", Help: "a longer name with the same prefix"})
	other.Set(1)
	reg.MustRegister(other, g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	v, err := ScrapeGauge(context.Background(), srv.Client(), srv.URL, "go_goroutines")
	if err != nil || v != 1234 {
		t.Errorf("ScrapeGauge = %v, %v; want 1234", v, err)
	}
	if _, err := ScrapeGauge(context.Background(), srv.Client(), srv.URL, "nope"); err == nil || !strings.Contains(err.Error(), "no such sample") {
		t.Errorf("missing sample: err = %v", err)
	}
	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	if _, err := ScrapeGauge(context.Background(), bad.Client(), bad.URL, "go_goroutines"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("HTTP 404: err = %v", err)
	}
}

func TestSampler(t *testing.T) {
	var mu sync.Mutex
	rss := []uint64{10, 30, 20}
	i := 0
	s := NewSampler(func() (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		if i >= len(rss) {
			return 0, errors.New("process gone")
		}
		v := rss[i]
		i++
		return v, nil
	}, SelfGoroutines)
	for range 4 {
		s.Sample()
	}
	got := s.Summary()
	if got.Samples != 4 || got.RSSMax != 30 || got.RSSLast != 20 || got.Errors != 1 || got.LastError != "process gone" || got.GoroutinesMax < 1 {
		t.Errorf("summary = %+v", got)
	}

	s2 := NewSampler(SelfRSS, SelfGoroutines)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s2.Run(ctx, time.Hour); close(done) }()
	cancel()
	<-done
	if got := s2.Summary(); got.Samples != 2 || got.GoroutinesLast < 2 {
		t.Errorf("Run: %+v, want a sample at start and at the end", got)
	}
}

func TestTableText(t *testing.T) {
	tb := NewTable("path", "p99", "result")
	tb.Add("connect→pop", "1.20ms", "PASS")
	tb.Add("connect→CRM", "15.0ms")
	var b bytes.Buffer
	if err := tb.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"path         p99     result\n" +
		"-----------  ------  ------\n" +
		"connect→pop  1.20ms  PASS\n" +
		"connect→CRM  15.0ms  \n"
	if b.String() != want {
		t.Errorf("text table:\n%s\nwant:\n%s", b.String(), want)
	}
	tb.Add("a", "b", "c", "d")
	if err := tb.WriteText(&b); err == nil {
		t.Error("a row wider than the header: no error")
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := NewTable("name", "value")
	tb.Add("a|b", "1")
	var b bytes.Buffer
	if err := tb.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "| name | value |\n| --- | --- |\n| a\\|b | 1 |\n"
	if b.String() != want {
		t.Errorf("markdown:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestFormats(t *testing.T) {
	for d, want := range map[time.Duration]string{
		999:                     "999ns",
		850 * time.Microsecond:  "850µs",
		4212 * time.Microsecond: "4.21ms",
		15 * time.Millisecond:   "15.0ms",
		1200 * time.Millisecond: "1.20s",
		-2 * time.Millisecond:   "-2.00ms",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{512: "512 B", 1536: "1.5 KiB", 37 << 20: "37.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Rate(12_000, time.Minute); got != "200.0/s" {
		t.Errorf("Rate = %q", got)
	}
}

func TestReportVerdict(t *testing.T) {
	ok := LatencyPath{Name: "connect→pop", P99Target: 5 * time.Millisecond,
		Summary: Summary{Count: 10, P99: 2 * time.Millisecond}, Totals: LedgerTotals{Expected: 10, Delivered: 10}}
	slow := ok
	slow.Summary.P99 = 6 * time.Millisecond
	lost := ok
	lost.Totals.Lost, lost.Totals.Delivered = 1, 9
	dup := ok
	dup.Totals.Duplicates = 1
	for name, c := range map[string]struct {
		paths []LatencyPath
		want  bool
	}{
		"ok":        {[]LatencyPath{ok}, true},
		"slow":      {[]LatencyPath{ok, slow}, false},
		"lost":      {[]LatencyPath{lost}, false},
		"duplicate": {[]LatencyPath{dup}, false},
		"empty":     {nil, false},
	} {
		if got := (Report{Paths: c.paths}).Passed(); got != c.want {
			t.Errorf("%s: Passed = %v, want %v", name, got, c.want)
		}
	}
	r := Report{Duration: time.Minute, Connects: 12_000, Events: 600_000, Agents: 2000, Paths: []LatencyPath{ok, slow},
		Process: ProcessSummary{RSSMax: 80 << 20, GoroutinesMax: 4100}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"200.0/s", "10000.0/s", "80.0 MiB", "4100", "≤ 5.00ms", "PASS", "FAIL", "6.00ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func BenchmarkRecorderRecord(b *testing.B) {
	r := NewRecorder()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 1237
			r.Record(d % (50 * time.Millisecond))
		}
	})
}

func TestPaceRunsExactlyN(t *testing.T) {
	var got []int
	res, err := Pace(context.Background(), 1e6, 500, func(i int, _ time.Time) { got = append(got, i) })
	if err != nil || res.Done != 500 || len(got) != 500 || got[0] != 0 || got[499] != 499 {
		t.Fatalf("Pace = %+v, %v; calls %d", res, err, len(got))
	}
}

func TestPaceStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Pace(ctx, 1e6, 1000, func(i int, _ time.Time) {
		if i == 10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || res.Done != 11 {
		t.Fatalf("Pace = %+v, %v; want 11 calls then canceled", res, err)
	}
	// A slow rate is cut short by the context, not waited out.
	ctx2, cancel2 := context.WithCancel(context.Background())
	res, err = Pace(ctx2, 0.001, 2, func(int, time.Time) { cancel2() })
	if !errors.Is(err, context.Canceled) || res.Done != 1 {
		t.Fatalf("slow Pace = %+v, %v", res, err)
	}
	if _, err := Pace(context.Background(), 0, 1, func(int, time.Time) {}); err == nil {
		t.Error("rate 0: no error")
	}
}

// A run whose generator fell behind its schedule by more than the bound is not a
// measurement of the daemon at the asked load: it fails, whatever else it measured.
func TestLagOverTheBoundFailsTheRun(t *testing.T) {
	path := LatencyPath{Summary: Summary{Count: 10, P99: time.Millisecond}, Totals: LedgerTotals{Expected: 10, Delivered: 10}}
	r := &Result{Options: Options{MaxLag: 50 * time.Millisecond, Duration: time.Second}, Report: Report{Paths: []LatencyPath{path, path}}}
	r.MaxLag = 50 * time.Millisecond
	if r.LagExceeded() || !r.Passed() {
		t.Fatalf("lag at the bound: exceeded %v, passed %v", r.LagExceeded(), r.Passed())
	}
	r.MaxLag = 51 * time.Millisecond
	if !r.LagExceeded() || r.Passed() {
		t.Fatalf("lag over the bound: exceeded %v, passed %v", r.LagExceeded(), r.Passed())
	}
	_, _, targets := r.Tables()
	var b bytes.Buffer
	if err := targets.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "generator lag ≤ 50.0ms") || !strings.Contains(b.String(), "FAIL") {
		t.Errorf("targets table does not show the lag failing:\n%s", b.String())
	}
}

// waitUntil never returns before its instant (the generator's schedule is a floor: a
// connect written early would shorten its measured latency), and returns ctx's error
// when ctx ends first.
func TestWaitUntilNeverEarly(t *testing.T) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, d := range []time.Duration{-time.Millisecond, 0, 50 * time.Microsecond, 700 * time.Microsecond, 3 * time.Millisecond} {
		at := time.Now().Add(d)
		if err := waitUntil(context.Background(), timer, at); err != nil {
			t.Fatal(err)
		}
		if now := time.Now(); now.Before(at) {
			t.Errorf("waitUntil(+%v) returned %v early", d, at.Sub(now))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := waitUntil(ctx, timer, time.Now().Add(time.Hour)); err != context.Canceled {
		t.Errorf("waitUntil with an ended context: %v, want %v", err, context.Canceled)
	}
	if err := waitUntil(ctx, timer, time.Now().Add(time.Millisecond)); err != context.Canceled {
		t.Errorf("waitUntil (short) with an ended context: %v, want %v", err, context.Canceled)
	}
}
