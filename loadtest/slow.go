package loadtest

import (
	"sort"
	"sync"
	"time"
)

// SlowArrival is one of a run's slowest arrivals.
type SlowArrival struct {
	Path    string        // "pop" or "CRM"
	After   time.Duration // arrival, since the first scheduled connect
	Latency time.Duration // from the connect
}

// Slow is one slow arrival: when it arrived and how late.
type Slow struct {
	Path    string        // "pop" or "CRM"
	At      time.Time     // arrival
	Latency time.Duration // from the connect
}

// worstArrivals keeps the n slowest arrivals seen: whether the tail is a few stalls (all
// at one moment, both paths) or spread over the run tells a process-wide pause from a
// slow path.
type worstArrivals struct {
	n  int
	mu sync.Mutex
	s  []Slow // sorted, slowest first
}

func newWorstArrivals(n int) *worstArrivals { return &worstArrivals{n: n} }

// note records an arrival if it is among the n slowest.
func (w *worstArrivals) note(path string, at time.Time, latency time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.s) == w.n && latency <= w.s[len(w.s)-1].Latency {
		return
	}
	i := sort.Search(len(w.s), func(i int) bool { return w.s[i].Latency < latency })
	w.s = append(w.s, Slow{})
	copy(w.s[i+1:], w.s[i:])
	w.s[i] = Slow{Path: path, At: at, Latency: latency}
	if len(w.s) > w.n {
		w.s = w.s[:w.n]
	}
}

// list returns the slowest arrivals, slowest first.
func (w *worstArrivals) list() []Slow {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Slow(nil), w.s...)
}
